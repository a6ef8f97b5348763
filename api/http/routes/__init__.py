"""One router per resource; `api.http.app` includes them all."""

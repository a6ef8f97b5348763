// The upload page: each chosen file sent with tus-js-client to /v1/uploads, authenticated by the session cookie
// and the X-CSRF-Token header. A dropped connection is retried (retryDelays), then resumed from the offset the
// server holds (the upload URL is kept in this page's memory only: it carries the upload's secret, so it is never
// written to localStorage). At the end each file shows its signed receipt, to read and to download.
"use strict";
(function () {
  var form = document.getElementById("upload-form");
  var block = document.getElementById("upload-config");
  if (!form || !block) {
    return;
  }
  var config = JSON.parse(block.textContent || "{}");
  var texts = config.texts || {};
  var list = document.getElementById("upload-list");
  var queue = [];
  var running = null;
  var counter = 0;

  function element(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) { node.setAttribute(name, attributes[name]); });
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function hex(buffer) {
    return Array.prototype.map.call(new Uint8Array(buffer), function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function digest(file) {
    // The server checks a declared SHA-256 against what arrived (a file changed in transit is refused).
    // Only where the browser can hash (a secure context) and the file is small enough to hold in memory.
    if (!window.crypto || !window.crypto.subtle || file.size > config.digestLimit) {
      return Promise.resolve(null);
    }
    return file.arrayBuffer().then(function (bytes) {
      return window.crypto.subtle.digest("SHA-256", bytes);
    }).then(hex, function () { return null; });
  }

  function decodeBase64Utf8(value) {
    var binary = window.atob(value);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return new TextDecoder("utf-8").decode(bytes);
  }

  function uploadIdOf(url) {
    var parts = new URL(url, window.location.href).pathname.split("/");
    return parts.length >= 2 ? parts[parts.length - 2] : "";
  }

  function row(file) {
    counter += 1;
    var id = "upload-" + counter;
    var item = element("li", { id: id });
    var name = element("p", { "class": "name", dir: "auto" });
    var bdi = element("bdi", {}, file.name);
    name.appendChild(bdi);
    var label = element("label", { "for": id + "-progress", "class": "visually-hidden" },
                        (texts.progress || "%(name)s").replace("%(name)s", file.name));
    var progress = element("progress", { id: id + "-progress", max: "100", value: "0" });
    var status = element("p", { "class": "status", role: "status" }, texts.waiting || "");
    item.appendChild(name);
    item.appendChild(label);
    item.appendChild(progress);
    item.appendChild(status);
    list.appendChild(item);
    return { item: item, progress: progress, status: status, file: file, receipt: null, upload: null };
  }

  function showReceipt(entry, uploadId) {
    var box = element("div", { "class": "receipt" });
    box.appendChild(element("p", {}, texts.receipt || ""));
    box.appendChild(element("pre", { dir: "ltr" }, entry.receipt));
    var blob = new Blob([entry.receipt], { type: "text/plain" });
    var link = element("a", { href: URL.createObjectURL(blob), download: (uploadId || "upload") + ".receipt.txt" },
                       texts.download || "");
    box.appendChild(link);
    entry.item.appendChild(box);
  }

  function finish(entry) {
    var uploadId = entry.upload && entry.upload.url ? uploadIdOf(entry.upload.url) : "";
    entry.progress.value = 100;
    entry.status.textContent = texts.done || "";
    entry.status.className = "status ok";
    if (running === entry) {
      running = null;
    }
    var ready = entry.receipt ? Promise.resolve(entry.receipt) :
      fetch("/v1/receipts/" + encodeURIComponent(uploadId), { credentials: "same-origin" }).then(function (answer) {
        return answer.ok ? answer.text() : null;
      });
    ready.then(function (text) {
      entry.receipt = text;
      if (text) {
        showReceipt(entry, uploadId);
      } else {
        entry.item.appendChild(element("p", { "class": "warn" }, texts.noreceipt || ""));
      }
    }, function () {
      entry.item.appendChild(element("p", { "class": "warn" }, texts.noreceipt || ""));
    }).then(next);
  }

  function fail(entry, error) {
    entry.status.textContent = (texts.failed || "") + ": " + (error && error.message ? error.message : String(error));
    entry.status.className = "status bad";
    var button = element("button", { type: "button", "class": "secondary" }, texts.resume || "");
    button.addEventListener("click", function () {
      button.remove();
      entry.status.className = "status";
      entry.status.textContent = texts.sending || "";
      running = entry;
      entry.upload.start(); // resumes from the server's offset (HEAD on the URL held in memory)
    });
    entry.item.appendChild(button);
    if (running === entry) {
      running = null;
    }
    next();
  }

  function start(entry, extra) {
    running = entry;
    entry.status.textContent = texts.hashing || "";
    digest(entry.file).then(function (sha256) {
      var metadata = { filename: entry.file.name, filetype: entry.file.type || "application/octet-stream" };
      Object.keys(extra).forEach(function (key) { if (extra[key]) { metadata[key] = extra[key]; } });
      if (sha256) {
        metadata.sha256 = sha256;
      }
      entry.status.textContent = texts.sending || "";
      entry.upload = new window.tus.Upload(entry.file, {
        endpoint: config.endpoint,
        retryDelays: config.retryDelays,
        chunkSize: config.chunkSize,
        metadata: metadata,
        headers: { "X-CSRF-Token": window.evidenceCsrf() },
        storeFingerprintForResuming: false,
        removeFingerprintOnSuccess: true,
        onProgress: function (sent, total) {
          entry.progress.value = total ? Math.floor((sent / total) * 100) : 0;
          entry.status.textContent = texts.sending || "";
        },
        onShouldRetry: function (error, attempt, options) {
          var status = error && error.originalResponse ? error.originalResponse.getStatus() : 0;
          entry.status.textContent = navigator.onLine === false ? (texts.offline || "") : (texts.retrying || "");
          // the bytes or the request themselves were refused: retrying cannot help
          return !(status === 400 || status === 403 || status === 404 || status === 410 || status === 413 ||
                   status === 415 || status === 422);
        },
        onAfterResponse: function (request, response) {
          var header = response.getHeader("Upload-Receipt");
          if (header) {
            entry.receipt = decodeBase64Utf8(header);
          }
        },
        onSuccess: function () { finish(entry); },
        onError: function (error) { fail(entry, error); }
      });
      entry.upload.start();
    });
  }

  function next() {
    if (running) {
      return; // one file at a time: the next starts when this one is done or stopped
    }
    var entry = queue.shift();
    if (entry) {
      start(entry, entry.extra);
    }
  }

  // A connection back: uploads stopped by the drop go on from where the server has them.
  window.addEventListener("online", function () {
    Array.prototype.forEach.call(list.querySelectorAll("button.secondary"), function (button) { button.click(); });
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var input = document.getElementById("upload-files");
    var error = document.getElementById("upload-files-error");
    if (!input.files || input.files.length === 0) {
      error.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    error.hidden = true;
    input.removeAttribute("aria-invalid");
    var extra = {
      source: document.getElementById("upload-source").value.trim(),
      incident: document.getElementById("upload-incident").value.trim(),
      note: document.getElementById("upload-note").value.trim()
    };
    Array.prototype.forEach.call(input.files, function (file) {
      var entry = row(file);
      entry.extra = extra;
      queue.push(entry);
    });
    input.value = "";
    if (!running) {
      next();
    }
  });
})();

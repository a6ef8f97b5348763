// The item pages: thumbnails that could not be drawn are hidden, a refused link form's address put back to the
// item page's, a small map when tiles are configured, and the custody timeline's "check proof" buttons, which
// recompute an event's RFC 9162 inclusion proof in this browser (WebCrypto SHA-256) and check the checkpoint's
// Ed25519 signature (C2SP signed note) against the log's key.
"use strict";
(function () {
  var enc = new TextEncoder();

  function hideBroken(img) { img.hidden = true; }
  document.querySelectorAll("img.thumb, img.preview").forEach(function (img) {
    if (img.complete && img.naturalWidth === 0) { hideBroken(img); }
    img.addEventListener("error", function () { hideBroken(img); });
  });

  // A refused link form is answered at its POST address: put the item page's own address back in the address
  // bar, so a reload or a bookmark opens the page (a GET of the POST address is refused).
  var back = document.getElementById("link-back");
  if (back && window.history && window.history.replaceState) {
    window.history.replaceState(null, "", back.getAttribute("href"));
  }

  var mapEl = document.getElementById("item-map");
  if (mapEl && window.L) {
    var lat = parseFloat(mapEl.getAttribute("data-lat")), lon = parseFloat(mapEl.getAttribute("data-lon"));
    var map = window.L.map(mapEl).setView([lat, lon], 14);
    window.L.tileLayer(mapEl.getAttribute("data-tiles"), { maxZoom: 18 }).addTo(map);
    window.L.circleMarker([lat, lon], { radius: 8 }).addTo(map);  // drawn in SVG: no marker images needed
  }

  function b64(text) {
    var raw = atob(text), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out;
  }
  function concat(parts) {
    var size = parts.reduce(function (n, p) { return n + p.length; }, 0), out = new Uint8Array(size), at = 0;
    parts.forEach(function (p) { out.set(p, at); at += p.length; });
    return out;
  }
  function sha256(bytes) {
    return crypto.subtle.digest("SHA-256", bytes).then(function (d) { return new Uint8Array(d); });
  }
  function same(a, b) {
    if (a.length !== b.length) { return false; }
    for (var i = 0; i < a.length; i++) { if (a[i] !== b[i]) { return false; } }
    return true;
  }
  function hex(bytes) {
    return Array.prototype.map.call(bytes, function (x) { return ("0" + x.toString(16)).slice(-2); }).join("");
  }

  // RFC 9162 section 2.1.3.2: the root an audit path leads to from a leaf hash (null: the path cannot fit).
  async function rootFrom(leaf, index, size, path) {
    if (index >= size) { return null; }
    var fn = index, sn = size - 1, r = leaf;
    for (var i = 0; i < path.length; i++) {
      if (sn === 0) { return null; }
      if (fn % 2 === 1 || fn === sn) {
        r = await sha256(concat([new Uint8Array([1]), path[i], r]));
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await sha256(concat([new Uint8Array([1]), r, path[i]]));
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 ? r : null;
  }

  // The checkpoint (C2SP tlog-checkpoint): origin, tree size and root hash, then the signatures.
  function parseNote(note) {
    var split = note.indexOf("\n\n");
    var text = note.slice(0, split + 1), lines = text.split("\n");
    var sigs = note.slice(split + 2).split("\n").filter(function (l) { return l.indexOf("\u2014 ") === 0; });
    return { text: text, origin: lines[0], size: parseInt(lines[1], 10), root: b64(lines[2]), sigs: sigs };
  }

  // The log's verifier key (C2SP vkey: <name>+<hex key id>+<base64(0x01 || Ed25519 key)>).
  async function parseKey(text) {
    var line = text.trim(), first = line.indexOf("+"), second = line.indexOf("+", first + 1);
    var raw = b64(line.slice(second + 1));
    if (first < 1 || second < 0 || raw[0] !== 1 || raw.length !== 33) { throw new Error("not an Ed25519 key"); }
    var key = await crypto.subtle.importKey("raw", raw.slice(1), { name: "Ed25519" }, false, ["verify"]);
    return { name: line.slice(0, first), id: line.slice(first + 1, second), key: key };
  }

  // Whether the checkpoint carries a valid signature by the log's key, and names that key's log as its origin.
  async function signatureOk(noteText, vkeyText) {
    var key = await parseKey(vkeyText), note = parseNote(noteText);
    for (var i = 0; i < note.sigs.length; i++) {
      var rest = note.sigs[i].slice(2), space = rest.indexOf(" ");
      if (rest.slice(0, space) !== key.name) { continue; }
      var sig = b64(rest.slice(space + 1));
      if (sig.length !== 68 || hex(sig.slice(0, 4)) !== key.id) { continue; }
      if (await crypto.subtle.verify({ name: "Ed25519" }, key.key, sig.slice(4), enc.encode(note.text))) {
        return key.name === note.origin;
      }
    }
    return false;
  }

  // Whether a proof (what /items/{id}/events/{seq}/proof answers) holds: the entry is event `seq`, its leaf
  // hash leads through the audit path to the root of the checkpoint, whose size is the proof's tree size.
  async function proofOk(proof) {
    var entry = b64(proof.entry);
    var fields = JSON.parse(new TextDecoder().decode(entry));
    var leaf = await sha256(concat([new Uint8Array([0]), entry]));
    var note = parseNote(proof.checkpoint);
    var root = await rootFrom(leaf, proof.leaf_index, note.size, proof.audit_path.map(b64));
    return fields.seq === proof.seq && proof.leaf_index === proof.seq && note.size === proof.tree_size &&
      root !== null && same(root, note.root);
  }
  window.evidenceProof = { proofOk: proofOk, signatureOk: signatureOk, rootFrom: rootFrom };

  var vkeyText = null;
  function loadKey(url) {
    if (!vkeyText) {
      vkeyText = fetch(url, { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) { throw new Error("no key"); }
        return r.text();
      });
    }
    return vkeyText;
  }

  async function check(button) {
    var out = document.getElementById(button.getAttribute("aria-describedby"));
    var line = document.getElementById("vkey-line");
    out.textContent = button.getAttribute("data-wait");
    out.className = "proof-result";
    try {
      var answer = await fetch(button.getAttribute("data-proof"), { credentials: "same-origin",
        headers: { Accept: "application/json" } });
      if (!answer.ok) { throw new Error("HTTP " + answer.status); }
      var proof = await answer.json();
      var ok = await proofOk(proof);
      var signed = null;  // null: this browser has no Ed25519 in WebCrypto (the hashes are still checked)
      if (ok && line) {
        try { signed = await signatureOk(proof.checkpoint, await loadKey(line.getAttribute("data-vkey"))); }
        catch (e) { signed = null; }
        line.textContent = line.getAttribute(signed === null ? "data-sig-unknown" : signed ? "data-sig-ok" : "data-sig-bad");
        line.className = signed === null ? "muted" : signed ? "ok" : "bad";
      }
      ok = ok && signed !== false;  // a checkpoint the log's key did not sign proves nothing
      out.textContent = button.getAttribute(ok ? "data-ok" : "data-bad");
      out.className = "proof-result " + (ok ? "ok" : "bad");
    } catch (e) {
      out.textContent = button.getAttribute("data-bad");
      out.className = "proof-result bad";
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.check-proof") : null;
    if (button) { check(button); }
  });
})();

"""The words a bundle carries for people: README.txt (English, then Arabic), withheld.txt, the BagIt profile.

A UN mechanism or a court may open a bundle years from now, with none of this
project installed and no reason to trust it. So the README names every file
and walks through checking each one with standard tools (`age`, `unzip`/`tar`,
`bagit.py`, `sha256sum`, `printf`, any C2SP / RFC 9162 verifier); `verify.py`
is offered last, as a convenience the by-hand path does not depend on. The
line formats quoted here are the ones `archive.custody.commit` and
`archive.records.changes` hash: the README must say exactly what they do.
"""

from __future__ import annotations

import textwrap
from typing import Any

from archive.custody.commit import PREFIX as ITEM_COMMIT
from archive.exports import formats
from archive.exports.formats import BundleInfo, Withheld
from archive.records.changes import FORMAT as RECORD_COMMIT

PURPOSE_TEXT = {
    "un": "a United Nations mechanism",
    "court": "a court",
    "partner": "a partner organisation",
    "internal": "internal use",
}
PURPOSE_TEXT_AR = {
    "un": "آلية تابعة للأمم المتحدة",
    "court": "محكمة",
    "partner": "منظمة شريكة",
    "internal": "الاستخدام الداخلي",
}


def _part_text(info: BundleInfo) -> str:
    return f", part {info.part} of {info.parts}" if info.parts > 1 else ""


def external_description(info: BundleInfo) -> str:
    """bag-info.txt's External-Description: one line (bag-info values may not hold a line break)."""
    counts = info.counts
    what = ", ".join(f"{counts[k]} {k}" for k in ("items", "incidents", "victims", "sources", "links", "events")
                     if k in counts)
    return (f"Evidence bundle {info.export_id}{_part_text(info)} from {info.origin}, exported on "
            f"{info.created_at[:10]} for {PURPOSE_TEXT.get(info.purpose, info.purpose)}"
            + (f" ({what})" if what else "")
            + ": original files bit for bit, their records, and custody events with inclusion proofs against "
              "one signed checkpoint. See README.txt to check it with standard tools.")


def bagit_profile() -> dict[str, Any]:
    """The BagIt Profile (bagit-profiles 1.3.0) every bundle conforms to, shipped as bagit-profile.json."""
    required = ["Source-Organization", "Contact-Name", "Contact-Email", "External-Description",
                "External-Identifier", "Bagging-Date", "Payload-Oxum", "Bag-Size", "BagIt-Profile-Identifier",
                "Evidence-Export-Id", "Evidence-Purpose", "Evidence-Origin", "Evidence-Export-Event"]
    bag_info: dict[str, dict[str, Any]] = {name: {"required": True, "repeatable": False} for name in required}
    bag_info["BagIt-Profile-Identifier"]["values"] = [formats.PROFILE_IDENTIFIER]
    bag_info["Evidence-Purpose"]["values"] = list(formats.PURPOSES)
    bag_info["Evidence-Export-Event"]["description"] = \
        "Sequence number of the custody event that recorded the start of this export."
    for name in ("Bag-Group-Identifier", "Bag-Count"):
        bag_info[name] = {"required": False, "repeatable": False,
                          "description": "Present when one export was split into several bags, each valid alone."}
    tag_files = [name for name in formats.TAG_FILES
                 if name not in ("bagit.txt", "bag-info.txt") and not name.startswith("manifest-")]
    return {
        "BagIt-Profile-Info": {
            "BagIt-Profile-Identifier": formats.PROFILE_IDENTIFIER,
            "BagIt-Profile-Version": formats.PROFILE_VERSION,
            "Source-Organization": "evidence-archive",
            "External-Description": (
                "Evidence bundle: original files bit for bit (data/originals), their records as JSON and CSV with "
                "printable custody certificates (data/records), custody events with C2SP tlog-proofs against one "
                "signed checkpoint and the salts opening their commitments (data/custody), and a C2SP signed note "
                "over tagmanifest-sha256.txt (signature.note)."),
            "Version": "1",
        },
        "Bag-Info": bag_info,
        "Manifests-Required": ["sha256", "sha512"],
        "Manifests-Allowed": ["sha256", "sha512"],
        "Tag-Manifests-Required": ["sha256", "sha512"],
        "Tag-Manifests-Allowed": ["sha256", "sha512"],
        "Tag-Files-Required": [*tag_files, formats.SIGNATURE],
        "Tag-Files-Allowed": [*tag_files, formats.SIGNATURE],
        "Allow-Fetch.txt": False,
        "Fetch.txt-Required": False,
        "Data-Empty": False,
        "Serialization": "optional",  # required of what we write; a folder unpacked from it must pass too
        "Accept-Serialization": ["application/zip", "application/x-tar"],
        "Accept-BagIt-Version": ["1.0"],
    }


def withheld_text(withheld: list[Withheld], info: BundleInfo) -> str:
    """withheld.txt: what the rules left out and why, as counts and reasons; never who or what exactly."""
    lines = [f"What this bundle ({info.export_id}{_part_text(info)}) leaves out, and why",
             "=" * 60, "",
             f"Purpose of the export: {info.purpose} ({PURPOSE_TEXT.get(info.purpose, info.purpose)}).",
             "The archive's rules are applied to every export and listed here as counts and reasons only:",
             "this file never names a person, a file or a record.", ""]
    if not withheld:
        lines.append("Nothing was withheld.")
    for entry in sorted(withheld, key=lambda w: (w.what, w.reason)):
        lines.append(f"- {entry.what}: {entry.count} (reason: {entry.reason})")
        lines.append(f"  {entry.why}")
    lines += ["", "Always withheld, whatever the purpose:",
              "- witnesses' real identities (sources appear under their aliases only);",
              "- victims' names whose withholding was asked for (the victim appears without the name);",
              "- free-text provenance notes.",
              "A record state that is withheld appears in changes.json with state null and no salt: its",
              "commitment is still in the custody log, so it can be opened later if the rules allow it.", "",
              "ما يستبعده هذا الملف وسببه",
              "يُطبّق الأرشيف قواعده على كل تصدير، ويذكر هنا الأعداد والأسباب فقط، ولا يذكر أبداً اسم شخص أو ملف أو سجل.",
              "تُحجب دائماً: الهويات الحقيقية للشهود (تظهر أسماؤهم المستعارة فقط)، وأسماء الضحايا التي طُلب حجبها،",
              "وملاحظات المصدر المكتوبة بحرية. الأسباب أعلاه مكتوبة بالإنجليزية بمفاتيح ثابتة.", ""]
    return "\n".join(lines)


def readme_text(info: BundleInfo) -> str:
    """README.txt: every file, and a step-by-step check by hand, in English then in Arabic."""
    return _english(info) + "\n\n" + _arabic(info)


def _names(info: BundleInfo) -> dict[str, str]:
    return {"note_check": _indent(NOTE_CHECK), "inclusion": _indent(INCLUSION, 3), "event_leaf": EVENT_LEAF,
            "proof_checkpoint": PROOF_CHECKPOINT, "state_digest": STATE_DIGEST, "batch_leaf": BATCH_LEAF,
            "bag": info.name, "id": info.export_id, "origin": info.origin, "seq": str(info.started_seq),
            "size": str(info.checkpoint_size), "ic": ITEM_COMMIT, "rc": RECORD_COMMIT,
            "purpose": PURPOSE_TEXT.get(info.purpose, info.purpose),
            "purpose_ar": PURPOSE_TEXT_AR.get(info.purpose, info.purpose),
            "part": _part_text(info),
            "part_ar": f"، الجزء {info.part} من {info.parts}" if info.parts > 1 else "",
            "enc": "age-encrypted" if info.encrypted else "not encrypted"}


# The shell commands the README gives, kept here so tests run them as printed (sh, coreutils, xxd, openssl, jq).
NOTE_CHECK = """\
NOTE=signature.note; KEY=data/custody/bundle.vkey
NAME=$(cut -d+ -f1 "$KEY")
sed '/^$/,$d' "$NOTE" > /tmp/body.txt
grep "^\u2014 $NAME " "$NOTE" | cut -d' ' -f3 | base64 -d | tail -c 64 > /tmp/sig.bin
(printf '302a300506032b6570032100' | xxd -r -p; cut -d+ -f3- "$KEY" | base64 -d | tail -c 32) > /tmp/pub.der
openssl pkeyutl -verify -pubin -inkey /tmp/pub.der -keyform DER -rawin -in /tmp/body.txt -sigfile /tmp/sig.bin
"""
EVENT_LEAF = "(printf '\\000'; cat data/custody/events/N.json) | sha256sum"
PROOF_CHECKPOINT = "sed '1,/^$/d' data/custody/proofs/N.tlog-proof | cmp - data/custody/checkpoint.txt"
STATE_DIGEST = "jq -jcS '.records[K].state' data/records/changes.json | sha256sum"
BATCH_LEAF = "(printf '\\000'; printf COMMITMENT | xxd -r -p) | sha256sum"
INCLUSION = """\
  FAIL if index >= tree_size; fn = index; sn = tree_size - 1; r = leaf hash
  for each hash p of the path, in order:
    if sn == 0: FAIL
    if fn is odd or fn == sn:
      r = SHA-256(0x01 || p || r)
      while fn is even and fn != 0: fn = fn >> 1; sn = sn >> 1
    else:
      r = SHA-256(0x01 || r || p)
    fn = fn >> 1; sn = sn >> 1
  OK when sn == 0 and r == root hash
"""


def _indent(text: str, by: int = 5) -> str:
    return "".join(" " * by + line + "\n" for line in text.rstrip("\n").split("\n"))


_EN = """\
EVIDENCE BUNDLE {id}{part}
===========================================================================
From the archive {origin},
made on {created} for {purpose}.
(English first; the Arabic text follows below. / النص العربي أدناه)

This folder is a BagIt 1.0 bag (RFC 8493). It holds original files exactly as
they were received (never altered, re-encoded or stripped of metadata), the
records describing them, and the archive's chain of custody for them: custody
events, each with a proof that it is in the archive's append-only log, and one
checkpoint of that log signed by the archive. Everything below can be checked
with standard tools; you do not need, and should not have to trust, the
archive's software.
{split}
WHAT EACH FILE IS
-----------------
bagit.txt                  BagIt version and encoding.
bag-info.txt               Who sent this bag, when, why (Evidence-Purpose), the
                           export id, and the custody event that recorded the
                           start of this export (Evidence-Export-Event).
manifest-sha256.txt        SHA-256 and SHA-512 of every file under data/.
manifest-sha512.txt
tagmanifest-sha256.txt     SHA-256 and SHA-512 of the tag files (bagit.txt,
tagmanifest-sha512.txt     bag-info.txt, both manifests, bagit-profile.json,
                           README.txt, verify.py, withheld.txt).
signature.note             The archive's signature (a C2SP signed note, key
                           "{origin}/bundles") over the SHA-256 of
                           tagmanifest-sha256.txt: it seals every file above.
bagit-profile.json         A BagIt Profile (bagit-profiles 1.3) describing what
                           every bundle contains.
README.txt                 This file.
verify.py                  An optional checker (Python 3.11+ and `cryptography`).
withheld.txt               What the archive's rules left out, as counts and
                           reasons, never identities.
data/originals/<item>.<ext>  Each original file, named by its item id. Its
                           original file name, where the rules allow it, is in
                           data/records/items.json.
data/records/items.json    The items: sha256, size, media type, extracted
                           metadata, fingerprints, links, the item's commitment
                           and the custody event holding it (commitment_event),
                           and which part holds its file ("part").
data/records/incidents.json, victims.json, sources.json, links.json
                           The documentation records; changes.json: every
                           change of those records with its commitment.
data/records/*.csv         The same records as CSV.
data/records/schema.json   The JSON Schema of the record files (versioned).
data/records/certificates/<item>.pdf
                           A printable custody certificate per item.
data/custody/events/<seq>.json   Each custody event, the exact bytes the log
                           hashed (RFC 8785 JSON, format evidence-event/1).
data/custody/proofs/<seq>.tlog-proof   Its inclusion proof (C2SP tlog-proof)
                           against checkpoint.txt.
data/custody/checkpoint.txt  The one signed checkpoint of the log (C2SP
                           tlog-checkpoint in a C2SP signed note); tree size {size}.
data/custody/log.vkey      The log's public key (C2SP vkey format).
data/custody/bundle.vkey   The public key that signed signature.note.
data/custody/salts.json    The salts that open the commitments of the included
                           items and record changes, and nothing else.

CHECKING IT BY HAND, STEP BY STEP
---------------------------------
Tools: age (age-encryption.org), unzip or tar, bagit.py (pip install bagit),
sha256sum/sha512sum, base64, cut, sed, grep, cmp (GNU coreutils and friends;
on macOS `shasum -a 256`), printf, xxd, jq, OpenSSL 3 and, if you prefer, a
C2SP signed-note / tlog-proof library (Go's golang.org/x/mod/sumdb/note and
golang.org/x/mod/sumdb/tlog). Commands run inside the bag folder (the one
holding bagit.txt) unless said otherwise; N, K, ITEM and the like are
placeholders for the file or value you are checking.

0. Decrypt and unpack (this copy is {enc}).
     sha256sum bundle.zip.age    (the file exactly as you received it)
     age -d -i YOUR-KEY.txt -o bundle.zip bundle.zip.age
     unzip bundle.zip            (or: tar -xf bundle.tar)
   The first hash is recorded in the archive's log by a later "transfer"
   event of export {id} (not in this bag: it was written after the bag);
   the archive can prove that event to you at any time.

1. The bag is complete and unaltered. From the folder above the bag:
     bagit.py --validate {bag}
   or by hand, inside the bag folder:
     sha256sum -c manifest-sha256.txt
     sha512sum -c manifest-sha512.txt
     sha256sum -c tagmanifest-sha256.txt
     sha512sum -c tagmanifest-sha512.txt
   Every line must say OK, and no file under data/ may be missing from the
   manifests (compare `find data -type f | sort` with the manifest's paths).

2. The archive signed this bag (signature.note).
     sha256sum tagmanifest-sha256.txt
   The hex must equal the "tagmanifest-sha256" line of signature.note, whose
   text also names the origin, the bundle id and the part. signature.note is
   a C2SP signed note: the text, an empty line, then "\u2014 <key name>
   <base64 of 4-byte key id + 64-byte Ed25519 signature>"; the key file
   (C2SP vkey) reads <key name>+<key id hex>+<base64 of 0x01 + public key>.
   Any C2SP signed-note verifier checks it (Go: golang.org/x/mod/sumdb/note),
   or OpenSSL 3 (prints "Signature Verified Successfully"):
{note_check}   The same key text must appear as "bundle_key" in the export-started
   event {seq} (step 4).

3. The checkpoint is the archive's (data/custody/checkpoint.txt).
   The same commands with NOTE=data/custody/checkpoint.txt and
   KEY=data/custody/log.vkey. Its body is the C2SP tlog-checkpoint: origin,
   tree size ({size}), base64 root hash.
   IMPORTANT: the keys inside the bag prove nothing about who made it (a
   forger could replace them). Get the archive's log key and bundle key
   through a trusted channel (from the archive directly, a witness, or a
   court record) and use them as KEY, or compare them with log.vkey and
   bundle.vkey. A newer checkpoint from the archive or a witness, with a
   consistency proof (RFC 9162), shows this history is still in the log.

4. Every custody event is in the log.
   For each data/custody/events/N.json, its leaf hash (RFC 9162: SHA-256 of
   0x00 followed by the exact bytes of the file) is:
     {event_leaf}
   proofs/N.tlog-proof is a C2SP tlog-proof: line 1 "c2sp.org/tlog-proof@v1",
   then "index N", then the audit path (base64 hashes, one per line), an
   empty line, and the checkpoint, which must be identical to checkpoint.txt:
     {proof_checkpoint}
   Check the proof with any C2SP tlog-proof / RFC 9162 inclusion verifier
   (Go: golang.org/x/mod/sumdb/tlog), or by hand (RFC 9162 section 2.1.3.2;
   index N, tree size and root hash from checkpoint.txt, || = concatenation):
{inclusion}   Event {seq} is the start of this export: its details list the purpose, the
   recipients' key fingerprints (SHA-256 of the age1... key text), the items
   and records included, and bundle_key.

5. Each original is the file the archive committed to.
     sha256sum data/originals/ITEM.EXT
   must equal "sha256" in items.json. With the item's salt from salts.json
   ("items"), the commitment is:
     printf '{ic} %s %s %s\\n' ITEM-ID SALT SHA256 | sha256sum
   It must equal the item's "commitment" in items.json and the "commitment" in
   the details of event commitment_event (step 4). Without the salt, the log
   alone reveals nothing about the file.
   In a split export an item's file may be in another part ("part"); its
   certificate and records are in every part.

6. Each record state is the one the archive logged (changes.json).
   For a change with a state, take its salt from salts.json ("records", by
   commitment). The state digest is the SHA-256 of the state's RFC 8785 (JCS)
   bytes (keys sorted, no spaces, UTF-8); for change K of changes.json:
     {state_digest}
   Then:
     printf '{rc} %s %s %s\\n' RECORD-ID SALT STATE-DIGEST | sha256sum
   must equal the change's "commitment". If batch_index is null, the event
   event_seq holds that commitment in its details. If not (a bulk import),
   the event holds "merkle_root": the leaf is
     {batch_leaf}
   and batch_path is its RFC 9162 inclusion path (leaf batch_index in a tree
   of batch_size leaves; the algorithm of step 4), which must lead to
   merkle_root. A change with state null was withheld (withheld.txt).

7. salts.json holds only the salts of the items in items.json and of the
   record changes in changes.json, nothing more.

CONVENIENCE
-----------
    python3 verify.py            (pip install cryptography first)
checks all of the above and prints what it checked; add --vkey FILE (the
archive's log key from a trusted channel) to establish authenticity, and
--checkpoint FILE (a witness's checkpoint, or the archive's consistency
proof as JSON) to check the bundle's history is still part of the log. It
is one readable file; the steps
above do not depend on it. The archive's own tool does the same:
    evidence verify-bundle BUNDLE-FILE --identity KEY --vkey FILE
"""

_AR = """\
حزمة أدلة {id}{part_ar}
===========================================================================
من الأرشيف {origin}، أُعدّت بتاريخ {created} لصالح {purpose_ar}.

هذا المجلد حقيبة BagIt 1.0 (RFC 8493). يحتوي على الملفات الأصلية كما استُلمت تماماً
(لم تُعدَّل ولم يُعَد ترميزها ولم تُحذف بياناتها الوصفية)، والسجلات التي تصفها، وسلسلة
حفظها (سلسلة العهدة) في الأرشيف: أحداث الحفظ، ولكل حدث إثبات بأنه موجود في سجل
الأرشيف الذي لا يُضاف إليه إلا في آخره، ونقطة تحقق واحدة من هذا السجل موقّعة من
الأرشيف. يمكن التحقق من كل ما يلي بأدوات قياسية؛ لا حاجة إلى برنامج الأرشيف ولا
إلى الثقة به.
{split_ar}
ما هو كل ملف
------------
bagit.txt                 إصدار BagIt والترميز.
bag-info.txt              من أرسل الحقيبة ومتى ولماذا (Evidence-Purpose)، ورقم
                          التصدير، ورقم حدث الحفظ الذي سجّل بدء هذا التصدير
                          (Evidence-Export-Event).
manifest-sha256.txt و manifest-sha512.txt   بصمة SHA-256 و SHA-512 لكل ملف في data/.
tagmanifest-sha256.txt و tagmanifest-sha512.txt   بصمات ملفات الوسوم (bagit.txt،
                          bag-info.txt، البيانين، bagit-profile.json، README.txt،
                          verify.py، withheld.txt).
signature.note            توقيع الأرشيف (ملاحظة موقّعة بصيغة C2SP، المفتاح
                          "{origin}/bundles") على بصمة SHA-256 للملف
                          tagmanifest-sha256.txt: يختم كل الملفات أعلاه.
bagit-profile.json        ملف تعريف BagIt (الإصدار 1.3) يصف محتوى كل حزمة.
README.txt                هذا الملف.
verify.py                 أداة تحقق اختيارية (Python 3.11 وحزمة cryptography).
withheld.txt              ما استبعدته قواعد الأرشيف، بالأعداد والأسباب فقط، دون أي هوية.
data/originals/<item>.<ext>   كل ملف أصلي، باسم رقم العنصر. اسمه الأصلي، حيث تسمح
                          القواعد، موجود في data/records/items.json.
data/records/items.json   العناصر: البصمة sha256، الحجم، نوع الوسائط، البيانات الوصفية،
                          البصمات الإدراكية، الروابط، الالتزام (commitment) وحدث الحفظ
                          الذي يحمله (commitment_event)، والجزء الذي يحوي الملف ("part").
data/records/incidents.json و victims.json و sources.json و links.json   سجلات التوثيق؛
                          و changes.json: كل تغيير على هذه السجلات مع التزامه.
data/records/*.csv        السجلات نفسها بصيغة CSV.
data/records/schema.json  مخطط JSON Schema لملفات السجلات (مع رقم إصدار).
data/records/certificates/<item>.pdf   شهادة حفظ قابلة للطباعة لكل عنصر.
data/custody/events/<seq>.json   كل حدث حفظ، بالبايتات نفسها التي حسب السجل بصمتها
                          (JSON وفق RFC 8785، الصيغة evidence-event/1).
data/custody/proofs/<seq>.tlog-proof   إثبات إدراجه (C2SP tlog-proof) مقابل checkpoint.txt.
data/custody/checkpoint.txt   نقطة التحقق الموقّعة الوحيدة للسجل؛ حجم الشجرة {size}.
data/custody/log.vkey     المفتاح العام للسجل (صيغة C2SP vkey).
data/custody/bundle.vkey  المفتاح العام الذي وقّع signature.note.
data/custody/salts.json   الأملاح (salts) التي تفتح التزامات العناصر والتغييرات المضمّنة، لا غير.

التحقق يدوياً خطوة بخطوة
------------------------
الأدوات: age، و unzip أو tar، و bagit.py (pip install bagit)، و sha256sum/sha512sum،
و base64 و cut و sed و grep و cmp، و printf، و xxd، و jq، و OpenSSL 3، أو إن شئت مكتبة
تحقق C2SP (مثل حزمتي Go: golang.org/x/mod/sumdb/note و golang.org/x/mod/sumdb/tlog).
تُنفَّذ الأوامر داخل مجلد الحقيبة (الذي يحوي bagit.txt) ما لم يُذكر غير ذلك؛ و N و K و ITEM
وما شابهها تُستبدل بالملف أو القيمة المراد التحقق منها. الأوامر هي نفسها كما في النص الإنجليزي.

0. فك التشفير وفك الضغط (هذه النسخة: {enc}).
     sha256sum bundle.zip.age    (الملف كما استلمته تماماً)
     age -d -i YOUR-KEY.txt -o bundle.zip bundle.zip.age
     unzip bundle.zip            (أو: tar -xf bundle.tar)
   البصمة الأولى مسجّلة في سجل الأرشيف بحدث "transfer" لاحق للتصدير {id} (ليس في هذه
   الحقيبة لأنه كُتب بعدها)، ويمكن للأرشيف أن يثبت لك هذا الحدث في أي وقت.

1. الحقيبة كاملة ولم تُغيَّر (من المجلد الذي فوق الحقيبة):
     bagit.py --validate {bag}
   أو يدوياً داخل المجلد:
     sha256sum -c manifest-sha256.txt
     sha512sum -c manifest-sha512.txt
     sha256sum -c tagmanifest-sha256.txt
     sha512sum -c tagmanifest-sha512.txt
   يجب أن يكون كل سطر OK، وألا يغيب أي ملف في data/ عن البيانات.

2. الأرشيف وقّع هذه الحقيبة (signature.note):
     sha256sum tagmanifest-sha256.txt
   يجب أن تطابق النتيجة سطر "tagmanifest-sha256" في signature.note. هذا الملف ملاحظة
   موقّعة بصيغة C2SP: النص، ثم سطر فارغ، ثم سطر التوقيع (اسم المفتاح، ثم base64 لمعرّف
   المفتاح وتوقيع Ed25519). تحقّق منه بأي أداة C2SP للملاحظات الموقّعة، أو بـ OpenSSL 3
   (تطبع "Signature Verified Successfully"):
{note_check}   ويجب أن يظهر نص المفتاح نفسه في الحقل "bundle_key" من حدث بدء التصدير {seq} (الخطوة 4).

3. نقطة التحقق صادرة عن الأرشيف (data/custody/checkpoint.txt): الأوامر نفسها مع
   NOTE=data/custody/checkpoint.txt و KEY=data/custody/log.vkey. نصها: الأصل، وحجم
   الشجرة ({size})، والجذر بترميز base64.
   تنبيه مهم: المفاتيح الموجودة داخل الحقيبة لا تثبت من صنعها (يمكن للمزوّر استبدالها).
   احصل على مفتاح السجل ومفتاح الحزم عبر قناة موثوقة (من الأرشيف مباشرة أو من شاهد أو
   من سجل المحكمة) واستخدمهما بدلاً من KEY، أو قارنهما بـ log.vkey و bundle.vkey. نقطة
   تحقق أحدث مع إثبات اتساق (RFC 9162) تُثبت أن هذا التاريخ ما زال جزءاً من السجل.

4. كل حدث حفظ موجود في السجل. لكل ملف data/custody/events/N.json، بصمة الورقة
   (RFC 9162: SHA-256 للبايت 0x00 متبوعاً ببايتات الملف كما هي):
     {event_leaf}
   الملف proofs/N.tlog-proof بصيغة C2SP tlog-proof: السطر الأول "c2sp.org/tlog-proof@v1"،
   ثم "index N"، ثم مسار التدقيق (بصمات base64، واحدة في كل سطر)، ثم سطر فارغ، ثم نقطة
   التحقق التي يجب أن تطابق checkpoint.txt حرفياً:
     {proof_checkpoint}
   تحقّق من الإثبات بأي أداة تحقق C2SP tlog-proof / RFC 9162، أو يدوياً بالخوارزمية
   (RFC 9162 القسم 2.1.3.2؛ الفهرس N، وحجم الشجرة والجذر من checkpoint.txt):
{inclusion}   الحدث {seq} هو بدء هذا التصدير: تفاصيله تذكر الغرض، وبصمات مفاتيح المستلمين،
   والعناصر والسجلات المضمّنة، و bundle_key.

5. كل ملف أصلي هو الملف الذي التزم به الأرشيف:
     sha256sum data/originals/ITEM.EXT
   يجب أن تطابق "sha256" في items.json. ومع ملح العنصر من salts.json ("items"):
     printf '{ic} %s %s %s\\n' ITEM-ID SALT SHA256 | sha256sum
   يجب أن تطابق "commitment" للعنصر في items.json وفي تفاصيل الحدث commitment_event.
   في التصدير المقسّم قد يكون ملف العنصر في جزء آخر ("part")؛ شهادته وسجلاته في كل جزء.

6. كل حالة سجل هي التي سجّلها الأرشيف (changes.json). خذ الملح من salts.json
   ("records"، حسب الالتزام). بصمة الحالة هي SHA-256 لبايتات الحالة وفق RFC 8785
   (المفاتيح مرتّبة، دون مسافات، UTF-8)؛ للتغيير رقم K في changes.json:
     {state_digest}
   ثم:
     printf '{rc} %s %s %s\\n' RECORD-ID SALT STATE-DIGEST | sha256sum
   يجب أن تطابق "commitment" للتغيير. إذا كان batch_index فارغاً (null) فالحدث event_seq
   يحمل الالتزام نفسه؛ وإلا (استيراد جماعي) يحمل الحدث "merkle_root"، والورقة هي
     {batch_leaf}
   و batch_path مسار إدراجها وفق RFC 9162 (الورقة batch_index في شجرة من batch_size
   ورقة؛ بخوارزمية الخطوة 4) ويجب أن يؤدي إلى merkle_root.
   التغيير الذي حالته null محجوب (انظر withheld.txt).

7. لا يحتوي salts.json إلا على أملاح العناصر الواردة في items.json والتغييرات الواردة
   في changes.json.

للتسهيل
-------
    python3 verify.py            (بعد pip install cryptography)
يتحقق من كل ما سبق ويطبع ما تحقق منه؛ أضف ‎--vkey FILE‎ (مفتاح السجل من قناة موثوقة)
أو ‎--checkpoint FILE‎ (نقطة تحقق أحدث) لإثبات الأصالة. الخطوات اليدوية أعلاه لا تعتمد عليه.
"""


def _english(info: BundleInfo) -> str:
    split = ""
    if info.parts > 1:
        split = "\n" + textwrap.fill(
            f"This export was split into {info.parts} bags (Bag-Group-Identifier {info.export_id}); this is part "
            f"{info.part}. Each part is a complete bag and checks on its own. The originals are spread over the "
            "parts; the records, certificates and custody files are the same in every part.", 78) + "\n"
    return _EN.format(created=info.created_at[:10], split=split, **_names(info))


def _arabic(info: BundleInfo) -> str:
    split_ar = ""
    if info.parts > 1:
        split_ar = (f"\nقُسّم هذا التصدير إلى {info.parts} حقائب (Bag-Group-Identifier {info.export_id})؛ هذا هو "
                    f"الجزء {info.part}.\nكل جزء حقيبة كاملة يمكن التحقق منها وحدها. الملفات الأصلية موزّعة على "
                    "الأجزاء،\nأما السجلات والشهادات وملفات الحفظ فهي نفسها في كل جزء.\n")
    names = _names(info)
    names["enc"] = "مشفّرة بأداة age" if info.encrypted else "غير مشفّرة"
    return _AR.format(created=info.created_at[:10], split_ar=split_ar, **names)

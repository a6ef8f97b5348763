"""XMP packets: parsed with expat, bounded, DTDs refused, flattened to ExifTool's groups.

Some files carry CreateDate, Orientation or GPS only in XMP. The packet is
RDF/XML written by many tools, so it is read defensively: no DOCTYPE or
entities (billion laughs), a nesting limit (deeply nested metadata), a size
limit, and a cap on how many properties are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

from ingest.media.limits import MAX_LIST, MAX_STRING, MAX_XMP, MAX_XMP_DEPTH, MAX_XMP_VALUES, clip

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_XML = "http://www.w3.org/XML/1998/namespace"
_SEP = "\x01"

# Namespace URI -> the prefix ExifTool names its group after (XMP-<prefix>).
PREFIXES = {
    "http://ns.adobe.com/xap/1.0/": "xmp",
    "http://ns.adobe.com/exif/1.0/": "exif",
    "http://ns.adobe.com/tiff/1.0/": "tiff",
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://ns.adobe.com/photoshop/1.0/": "photoshop",
    "http://ns.adobe.com/xap/1.0/mm/": "xmpMM",
    "http://ns.adobe.com/xap/1.0/rights/": "xmpRights",
    "http://ns.adobe.com/exif/1.0/aux/": "aux",
    "http://ns.adobe.com/camera-raw-settings/1.0/": "crs",
    "http://ns.adobe.com/xmp/1.0/DynamicMedia/": "xmpDM",
    "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/": "iptcCore",
    "http://iptc.org/std/Iptc4xmpExt/2008-02-29/": "iptcExt",
    "http://cipa.jp/exif/1.0/": "exifEX",
    "http://ns.google.com/photos/1.0/camera/": "GCamera",
    "http://ns.adobe.com/pdf/1.3/": "pdf",
    "adobe:ns:meta/": "x",
}


class XMPError(ValueError):
    """The packet is not XMP we are willing to read; the message says why."""


@dataclass
class _Element:
    uri: str
    name: str
    attrs: dict[str, str]
    children: list[_Element] = field(default_factory=list)
    text: list[str] = field(default_factory=list)  # pieces as expat hands them over, joined once at the end
    size: int = 0  # characters held in `text`, kept as it grows (summing it per callback was quadratic)
    total: int = 0  # characters the packet gave this element, held or not


def _split(qname: str) -> tuple[str, str]:
    uri, _, local = qname.rpartition(_SEP)
    return uri, local


def _tree(packet: bytes) -> tuple[_Element, dict[str, str]]:
    """A small element tree, refusing DTDs and excessive depth or size."""
    parser = expat.ParserCreate(namespace_separator=_SEP)
    parser.buffer_text = True  # one callback per text run, not one per line or entity
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    root = _Element("", "#root", {})
    stack = [root]
    prefixes: dict[str, str] = {}
    count = 0
    held = 0  # characters of text held over the whole tree, bounded whatever the packet's shape

    def refuse(*_: Any) -> None:
        raise XMPError("XMP packet declares a DTD or entities (refused)")

    def start(qname: str, attrs: dict[str, str]) -> None:
        nonlocal count
        count += 1
        if len(stack) > MAX_XMP_DEPTH:
            raise XMPError(f"XMP nested deeper than {MAX_XMP_DEPTH} levels (refused)")
        if count > MAX_XMP_VALUES * 4:
            raise XMPError("XMP packet has too many elements (refused)")
        uri, local = _split(qname)
        element = _Element(uri, local, attrs)
        stack[-1].children.append(element)
        stack.append(element)

    def end(_qname: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        nonlocal held
        element = stack[-1]
        element.total += len(data)
        if element.size < MAX_STRING + 1 and held < MAX_XMP:
            # Only the first MAX_STRING characters of a value are ever kept (`clip`): hold no more.
            piece = data[: MAX_STRING + 1 - element.size]
            element.text.append(piece)
            element.size += len(piece)
            held += len(piece)

    def namespace(prefix: str | None, uri: str) -> None:
        if prefix and uri not in prefixes:
            prefixes[uri] = prefix

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartNamespaceDeclHandler = namespace
    try:
        parser.Parse(packet, True)
    except expat.ExpatError as exc:
        raise XMPError(f"XMP packet is not well-formed XML: {exc}") from exc
    return root, prefixes


def _text(element: _Element) -> str:
    text = "".join(element.text).strip()
    if element.total > element.size and len(text) > MAX_STRING:
        return text[:MAX_STRING] + f"…[{element.total - MAX_STRING} more characters cut]"
    return clip(text)


def _prop_value(element: _Element) -> Any:
    """The value of one property element: text, list (Seq/Bag/Alt) or struct (dict)."""
    resource = element.attrs.get(RDF + _SEP + "resource")
    if resource is not None:
        return clip(resource)
    for child in element.children:
        if child.uri == RDF and child.name in ("Seq", "Bag", "Alt"):
            items = [_prop_value(li) for li in child.children if li.uri == RDF and li.name == "li"]
            return items[:MAX_LIST]
    if element.attrs.get(RDF + _SEP + "parseType") == "Resource":
        return _struct(element)
    for child in element.children:
        if child.uri == RDF and child.name == "Description":
            return _struct(child)
    if element.children or _qualifiers(element):
        return _struct(element)
    return _text(element)


def _qualifiers(element: _Element) -> dict[str, str]:
    return {k: v for k, v in element.attrs.items() if not k.startswith((RDF + _SEP, _XML + _SEP))}


def _struct(element: _Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in _qualifiers(element).items():
        out[_split(key)[1]] = clip(value)
    for child in element.children:
        out[child.name] = _prop_value(child)
    return out


def _group(uri: str, prefixes: dict[str, str]) -> str:
    return "XMP-" + PREFIXES.get(uri, prefixes.get(uri, "unknown"))


def _descriptions(element: _Element) -> list[_Element]:
    """Every rdf:Description directly under rdf:RDF (wherever rdf:RDF sits)."""
    found: list[_Element] = []
    pending = [element]
    while pending:
        current = pending.pop()
        for child in current.children:
            if child.uri == RDF and child.name == "RDF":
                found.extend(c for c in child.children if c.uri == RDF and c.name == "Description")
            else:
                pending.append(child)
    return found


def _packet_body(packet: bytes) -> bytes:
    """The XML between the xpacket wrapper, without trailing padding or junk."""
    start = packet.find(b"<x:xmpmeta")
    end_tag = b"</x:xmpmeta>"
    if start < 0:
        start = packet.find(b"<rdf:RDF")
        end_tag = b"</rdf:RDF>"
    if start < 0:
        raise XMPError("no XMP root element (x:xmpmeta or rdf:RDF) in the packet")
    end = packet.rfind(end_tag)
    if end < start:
        raise XMPError("XMP packet is truncated (no closing root element)")
    return packet[start : end + len(end_tag)]


def parse_xmp(packet: bytes) -> dict[str, dict[str, Any]]:
    """Properties grouped as ExifTool groups them (XMP-xmp, XMP-exif, XMP-tiff ...)."""
    if len(packet) > MAX_XMP:
        raise XMPError(f"XMP packet larger than {MAX_XMP} bytes (refused)")
    root, prefixes = _tree(_packet_body(packet))
    groups: dict[str, dict[str, Any]] = {}
    kept = 0
    for description in _descriptions(root):
        properties = [(_split(k), clip(v)) for k, v in _qualifiers(description).items()]
        properties += [((child.uri, child.name), _prop_value(child)) for child in description.children]
        for (uri, name), value in properties:
            kept += 1
            if kept > MAX_XMP_VALUES:
                return groups
            groups.setdefault(_group(uri, prefixes), {})[name] = value
    return groups

package etcdv2

import (
	"encoding/base64"
	"fmt"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kvop/kvop/pkg/kvstore"
)

// The v2 tree layout (see the package doc): user key "a/b" is the value node
// root/a/b/marker, and every user segment is escaped so that it can neither be the marker nor
// start with "_" (v2 hides such nodes from listings and recursive watches).
const (
	root   = "/kvop"
	marker = "~"
	escape = '~'
)

// escapeSegment maps one user path segment to its node name: a "~" goes before a segment
// that starts with "_" (hidden in v2) or with "~" (so that no escaped segment is ever the bare
// marker, and unescaping is unambiguous).
func escapeSegment(s string) string {
	if s[0] == '_' || s[0] == escape {
		return string(escape) + s
	}
	return s
}

// unescapeSegment reverses escapeSegment.
func unescapeSegment(s string) string {
	if len(s) > 1 && s[0] == escape {
		return s[1:]
	}
	return s
}

// checkKey rejects what the layout cannot carry: v2 returns node names in JSON strings, which
// would replace invalid UTF-8 by U+FFFD, so such a key could be written but never listed back.
func checkKey(k string) error {
	if !utf8.ValidString(k) {
		return fmt.Errorf("%w: %q is not valid UTF-8 (etcd v2 returns keys as JSON strings)", kvstore.ErrInvalidKey, k)
	}
	return nil
}

// dirNode is the v2 directory that holds key k's value marker and everything below k.
func dirNode(k string) string {
	segs := strings.Split(k, "/")
	for i, s := range segs {
		segs[i] = escapeSegment(s)
	}
	return root + "/" + strings.Join(segs, "/")
}

// valueNode is the v2 value node holding key k's value.
func valueNode(k string) string { return dirNode(k) + "/" + marker }

// userKey returns the user key whose value node is node, or false when node is not a value
// marker under root (a directory, or something kvop did not write).
func userKey(node string) (string, bool) {
	rest, ok := strings.CutPrefix(node, root+"/")
	if !ok {
		return "", false
	}
	dir, name := path.Split(rest)
	if name != marker || dir == "" {
		return "", false
	}
	segs := strings.Split(strings.TrimSuffix(dir, "/"), "/")
	for i, s := range segs {
		if s == "" {
			return "", false
		}
		segs[i] = unescapeSegment(s)
	}
	return strings.Join(segs, "/"), true
}

// parentNode returns the directory that holds node ("" for root and above).
func parentNode(node string) string {
	p := path.Dir(node)
	if len(p) <= len(root) {
		return ""
	}
	return p
}

// Value encoding. v2 values are JSON strings, so bytes that are not UTF-8 travel as base64.
// A value also says which index is its LastIndex: normally the node's ModifiedIndex, but a
// background refresh (KeepAlive, lock) moves ModifiedIndex without being a change, so the
// refresher first rewrites the value with the LastIndex spelled out ("#<index>").
//
//	"=" text           text is the value (valid UTF-8); LastIndex = ModifiedIndex
//	"@" base64         the value in standard base64;    LastIndex = ModifiedIndex
//	"#" index body     body is one of the above;         LastIndex = index
const (
	textTag   = '='
	binaryTag = '@'
	indexTag  = '#'
)

// encodeValue returns the node value for v; index 0 means "LastIndex is ModifiedIndex".
func encodeValue(v []byte, index uint64) string {
	var b strings.Builder
	if index != 0 {
		b.WriteByte(indexTag)
		b.WriteString(uitoa(index))
	}
	if utf8.Valid(v) {
		b.WriteByte(textTag)
		b.Write(v)
	} else {
		b.WriteByte(binaryTag)
		b.WriteString(base64.StdEncoding.EncodeToString(v))
	}
	return b.String()
}

// decodeValue returns the value and LastIndex of a node with value raw and ModifiedIndex mod,
// and whether the LastIndex was spelled out. A value kvop did not write is taken as it is.
func decodeValue(raw string, mod uint64) (value []byte, last uint64, explicit bool) {
	last = mod
	if len(raw) > 0 && raw[0] == indexTag {
		end := strings.IndexFunc(raw[1:], func(r rune) bool { return r < '0' || r > '9' })
		if end > 0 {
			if n, err := strconv.ParseUint(raw[1:1+end], 10, 64); err == nil && n != 0 {
				last, explicit, raw = n, true, raw[1+end:]
			}
		}
	}
	if len(raw) > 0 {
		switch raw[0] {
		case textTag:
			return []byte(raw[1:]), last, explicit
		case binaryTag:
			if b, err := base64.StdEncoding.DecodeString(raw[1:]); err == nil {
				return b, last, explicit
			}
		}
	}
	return []byte(raw), last, explicit
}

func uitoa(n uint64) string { return strconv.FormatUint(n, 10) }

package server

import "encoding/binary"

// textFrame returns payload framed as one unmasked, uncompressed WebSocket
// text frame (RFC 6455 §5.2). Built once per message and shared by every
// subscriber: the fan-out writes these exact bytes to each socket.
func textFrame(payload []byte) []byte {
	return appendFrame(make([]byte, 0, len(payload)+10), 0x81, payload)
}

// closeFrame returns a close frame carrying code and reason.
func closeFrame(code int, reason string) []byte {
	if len(reason) > 123 { // control frames carry at most 125 bytes
		reason = reason[:123]
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	p = append(p, reason...)
	return appendFrame(make([]byte, 0, len(p)+2), 0x88, p)
}

func appendFrame(dst []byte, first byte, payload []byte) []byte {
	n := len(payload)
	switch {
	case n < 126:
		dst = append(dst, first, byte(n))
	case n <= 0xffff:
		dst = append(dst, first, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, first, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

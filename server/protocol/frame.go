package protocol

import "encoding/binary"

// WebSocket framing (RFC 6455 §5.2) of server messages. A frame is built
// once per message and the same bytes are written to every receiving
// socket, so frames are unmasked and uncompressed. In this package a name
// ending in Frame returns a complete WebSocket frame; a name starting with
// Append appends a JSON payload.

// frameHeadroom is the largest text-frame header: 2 bytes plus an 8-byte
// length.
const frameHeadroom = 10

// beginFrame returns a buffer whose payload starts after room for the
// header, so endFrame can frame it in place: one allocation per frame.
func beginFrame(payloadHint int) []byte {
	return make([]byte, frameHeadroom, frameHeadroom+payloadHint)
}

// endFrame writes the header of a final text frame in front of the
// payload appended after beginFrame and returns the frame.
func endFrame(b []byte) []byte {
	return frameInPlace(b, 0x81)
}

func frameInPlace(b []byte, first byte) []byte {
	n := len(b) - frameHeadroom
	var start int
	switch {
	case n < 126:
		start = frameHeadroom - 2
		b[start+1] = byte(n)
	case n <= 0xffff:
		start = frameHeadroom - 4
		b[start+1] = 126
		binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	default:
		start = 0
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
	b[start] = first
	return b[start:]
}

// TextFrame returns payload as one final text frame.
func TextFrame(payload []byte) []byte {
	return endFrame(append(beginFrame(len(payload)), payload...))
}

// CloseFrame returns a close frame carrying code and reason; the reason is
// cut to fit a control frame (at most 125 bytes of payload).
func CloseFrame(code Code, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	b := binary.BigEndian.AppendUint16(beginFrame(2+len(reason)), uint16(code))
	return frameInPlace(append(b, reason...), 0x88)
}

// Package protocol is the wire format between agencies and the central: framing,
// message encoding and decoding, and the closed set of error codes. It is pure
// over io.Reader and io.Writer: no sockets policy, no logging, no config.
//
// # Frames
//
// Every message travels in one frame: a 6-byte header and a body. Integers are
// big-endian; strings are UTF-8, each preceded by its length in one byte.
//
//	offset size field
//	0      1    marker: 0xA1, protocol version 1 (not printable ASCII, so a
//	            text line on the same port is told apart by its first byte)
//	1      1    kind of message (see Kind)
//	2      4    body length in bytes (uint32), at most MaxFrame-HeaderSize
//
// A reader refuses a frame longer than MaxFrame (64 KiB) before allocating.
// Agencies never send a batch frame longer than MaxBatchFrame (8 KiB, header included).
//
// # Bodies
//
//	Hello       agency u32 | mode u8 (1 = CSV stream, 2 = single bet)
//	Welcome     round u64 | committed u64 | finished u8 (0/1) | digest [32]
//	Batch       agency u32 | first u64 | count u16 | count × bet
//	Ack         first u64 | stored u16 | committed u64
//	Finish      total u64
//	Finished    count u32 | agencies u32 | committed u64
//	WinnersReq  (empty)
//	Winners     last u8 (0/1) | count u16 | count × (len u8 | document)
//	Error       code u8 | index u32 (0xFFFFFFFF: none) | len u16 | message
//	Received    (empty)
//	Goodbye     (empty)
//
// A bet inside a batch (9 bytes plus its three strings):
//
//	number u16 | year u16 | month u8 | day u8 |
//	len u8 | document | len u8 | first name | len u8 | last name
//
// "first" is the index of the batch's first bet in the agency's stream of valid
// bets (0-based); "committed" is how many of the agency's bets the central has
// durably stored. Together they make ingestion exactly-once: see the README.
//
// A session ends with a receipt: after the last Winners frame the agency
// sends Received, the central records the delivery durably and answers
// Goodbye. An agency that does not get Goodbye reconnects and asks again, so
// the central knows for sure when every agency has its winners.
package protocol

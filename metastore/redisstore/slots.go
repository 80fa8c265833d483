package redisstore

import (
	"strconv"
	"strings"
	"sync"
)

// Redis Cluster's key → slot mapping (the cluster spec's CRC16/XMODEM of
// the key, or of its hash tag, mod 16384), so an outbox can be put in the
// slot of the key whose change it records.

const numSlots = 16384

var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

func crc16(s string) uint16 {
	var c uint16
	for i := 0; i < len(s); i++ {
		c = c<<8 ^ crcTable[byte(c>>8)^s[i]]
	}
	return c
}

// keySlot is the slot Redis Cluster puts key in.
func keySlot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	return int(crc16(key) % numSlots)
}

var (
	slotTagsOnce sync.Once
	slotTags     []string
)

// slotTag is a short string that hashes to slot: the first of 0, 1, 2, …
// (base 36) that does. All 16384 are found within a few hundred thousand.
func slotTag(slot int) string {
	slotTagsOnce.Do(func() {
		slotTags = make([]string, numSlots)
		for n, left := 0, numSlots; left > 0; n++ {
			t := strconv.FormatInt(int64(n), 36)
			if s := keySlot(t); slotTags[s] == "" {
				slotTags[s] = t
				left--
			}
		}
	})
	return slotTags[slot]
}

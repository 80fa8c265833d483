package redisstore

// Redis key schema. Every key starts with the store's prefix P ("ferry:" in
// production, a unique one per test):
//
//	P r:<key>            hash   one record: v = value, ver = version,
//	                            f = highest fence written; the record's expiry
//	                            is the key's own TTL (PEXPIRE/PERSIST)
//	P {i:<name>}:z       zset   members of index <name>, all scored 0 so that
//	                            ZRANGEBYLEX orders them by raw bytes
//	P {i:<name>}:h       hash   member → value for the same index
//	P {lock}:fence       string store-wide fence counter (INCR, never reset)
//	P {lock}:l:<name>    string lease <name>: "<fence>:<owner>", PX = TTL
//
// The braces are Redis Cluster hash tags: every script or MULTI touches keys
// of one slot only. An index's zset and hash share the tag "i:<name>", and all
// leases share "{lock}" with the fence counter so that one script can check
// the lease, draw the fence and set the lease atomically. That puts every
// lease in one slot; leases are few and tiny, and the counter would be a
// single hot key anyway.
//
// If P itself contains a hash tag ("{ferry}:"), the tag is taken from P and
// everything lands in one slot, which is still correct. The two keys of an
// index differ only after the closing brace we add, so they hash alike
// whatever the name contains. The one prefix that breaks this on a cluster
// is one whose first '{' is followed directly by '}': Redis then hashes whole
// keys, so P must not contain "{}".

func (s *Store) recordKey(key string) string { return s.prefix + "r:" + key }

func (s *Store) indexKeys(name string) (zset, hash string) {
	base := s.prefix + "{i:" + name + "}"
	return base + ":z", base + ":h"
}

func (s *Store) fenceKey() string { return s.prefix + "{lock}:fence" }

func (s *Store) lockKey(name string) string { return s.prefix + "{lock}:l:" + name }

// Package lru is an in-memory cache bounded by the bytes of what it holds,
// least recently used out first.
package lru

import (
	"container/list"
	"sync"
)

// Cache maps keys to values of a known size. It is safe for concurrent use.
type Cache[V any] struct {
	mu    sync.Mutex
	max   int64
	size  int64
	order *list.List // front = most recently used
	byKey map[string]*list.Element
}

type entry[V any] struct {
	key  string
	v    V
	size int64
}

// New returns a cache holding at most max bytes.
func New[V any](max int64) *Cache[V] {
	return &Cache[V]{max: max, order: list.New(), byKey: map[string]*list.Element{}}
}

// Get returns the value of key and marks it used.
func (c *Cache[V]) Get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		c.order.MoveToFront(el)
		return el.Value.(*entry[V]).v, true
	}
	var zero V
	return zero, false
}

// Add stores v under key, replacing what was there, and evicts the least
// recently used entries until the cache fits. A value larger than the whole
// cache is not kept: it would evict everything else.
func (c *Cache[V]) Add(key string, v V, size int64) {
	if size > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remove(key)
	c.byKey[key] = c.order.PushFront(&entry[V]{key: key, v: v, size: size})
	c.size += size
	for c.size > c.max {
		c.remove(c.order.Back().Value.(*entry[V]).key)
	}
}

// Remove drops key, if present.
func (c *Cache[V]) Remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remove(key)
}

func (c *Cache[V]) remove(key string) {
	if el, ok := c.byKey[key]; ok {
		c.order.Remove(el)
		delete(c.byKey, key)
		c.size -= el.Value.(*entry[V]).size
	}
}

// Bytes is the size of what the cache holds.
func (c *Cache[V]) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

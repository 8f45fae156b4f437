package persisted

import (
	"container/list"
	"sync"
)

// cache remembers documents by hash, least recently used first out, within a bound on
// the bytes it holds (a count alone would let a few huge documents take the memory).
type cache struct {
	mu    sync.Mutex
	max   int
	size  int
	order *list.List // of *entry, most recently used at the front
	items map[string]*list.Element
}

type entry struct{ hash, doc string }

func newCache(maxBytes int) *cache {
	return &cache{max: maxBytes, order: list.New(), items: map[string]*list.Element{}}
}

func (c *cache) get(hash string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[hash]
	if !ok {
		return "", false
	}
	c.order.MoveToFront(el)
	return el.Value.(*entry).doc, true
}

func (c *cache) add(hash, doc string) {
	cost := len(hash) + len(doc)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[hash]; ok {
		c.order.MoveToFront(el)
		return
	}
	if cost > c.max/4 {
		return // one document may not push out most of the others
	}
	c.items[hash] = c.order.PushFront(&entry{hash, doc})
	c.size += cost
	for c.size > c.max {
		last := c.order.Back()
		e := last.Value.(*entry)
		c.order.Remove(last)
		delete(c.items, e.hash)
		c.size -= len(e.hash) + len(e.doc)
	}
}

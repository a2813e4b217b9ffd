package worker

import (
	"strconv"
	"testing"
)

func TestEndpointIDsAreTheParsedOnesAndStayBounded(t *testing.T) {
	var c endpointIDs
	for range 2 { // the second round is answered from the cache
		for _, target := range []string{"https://Example.com/hooks", "http://example.com:8080/a?b=c", "https://example.com:443/x", "not a url", ""} {
			origin, key, ok := c.get(target)
			wantOrigin, wantOK := endpointOrigin(target)
			if origin != wantOrigin || ok != wantOK {
				t.Errorf("get(%q) = %q, %v; want %q, %v", target, origin, ok, wantOrigin, wantOK)
			}
			if ok && key != endpointKey(wantOrigin) || !ok && key != "" {
				t.Errorf("get(%q) key %q, want %q", target, key, endpointKey(wantOrigin))
			}
		}
	}
	if a, _, _ := c.get("https://example.com/a"); a != "https://example.com:443" {
		t.Errorf("origin %q", a)
	}
	for i := range 3 * maxCachedEndpoints {
		c.get("https://h" + strconv.Itoa(i) + ".example.com/")
	}
	if n := len(c.m); n > maxCachedEndpoints {
		t.Errorf("%d cached endpoint ids, bound %d", n, maxCachedEndpoints)
	}
}

package consoletest

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Client is a browser-like HTTP client with its own cookie jar that does not follow
// redirects, so a test sees each answer.
type Client struct {
	t    testing.TB
	base string
	hc   *http.Client
}

// NewClient returns a client of the server at base (http://host:port).
func NewClient(t testing.TB, base string) *Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Client{t: t, base: base, hc: &http.Client{Jar: jar, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Cookies returns the cookies the client holds for path.
func (c *Client) Cookies(path string) []*http.Cookie {
	c.t.Helper()
	u, err := url.Parse(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.hc.Jar.Cookies(u)
}

// SetTransport makes the client send its requests through rt (a TLS test server's
// transport, say).
func (c *Client) SetTransport(rt http.RoundTripper) { c.hc.Transport = rt }

// Page is one answer.
type Page struct {
	Status int
	Header http.Header
	Body   string
}

// Do sends req with the client's cookies and returns the answer.
func (c *Client) Do(req *http.Request) Page {
	c.t.Helper()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return Page{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// Get requests path.
func (c *Client) Get(path string) Page {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.Do(req)
}

// Post submits form to path.
func (c *Client) Post(path string, form url.Values) Page {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.Do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// CSRF returns the CSRF token of the first form on a page.
func CSRF(t testing.TB, p Page) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no CSRF field on the page (status %d):\n%s", p.Status, p.Body)
	}
	return m[1]
}

// SignIn fills in the sign-in form of the console under prefix ("/portal/" or
// "/console/"): field ("key" or "token") with cred. It returns the answer.
func (c *Client) SignIn(prefix, field, cred string) Page {
	c.t.Helper()
	form := c.Get(prefix + "signin")
	return c.Post(prefix+"signin", url.Values{"csrf": {CSRF(c.t, form)}, field: {cred}})
}

// MustSignIn signs in and fails the test unless it lands on prefix+landing, which it
// returns (for its CSRF token).
func (c *Client) MustSignIn(prefix, field, cred, landing string) Page {
	c.t.Helper()
	p := c.SignIn(prefix, field, cred)
	if p.Status != http.StatusSeeOther || p.Header.Get("Location") != prefix+landing {
		c.t.Fatalf("sign-in: status %d, Location %q, want 303 to %s\n%s", p.Status, p.Header.Get("Location"), prefix+landing, p.Body)
	}
	l := c.Get(prefix + landing)
	if l.Status != http.StatusOK {
		c.t.Fatalf("GET %s after sign-in: %d\n%s", landing, l.Status, l.Body)
	}
	return l
}

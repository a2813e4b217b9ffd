// Package consoletest drives the web consoles in tests: a headless Chromium (Debian's
// chromium, installed by `make tools`) through chromedp, with waits that end by
// themselves and screenshots into a folder git ignores, and a browser-like HTTP
// client for page-level checks. The console's own tests, the gateway's and the
// command's end-to-end tests share it.
package consoletest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian's chromium package (installed by `make tools`) puts the
// browser.
const ChromiumPath = "/usr/bin/chromium"

// NewBrowser starts a fresh headless Chromium for one test and returns its context.
// A missing Chromium fails the test: the browser tests are part of `make test`.
func NewBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Fatalf("headless Chromium is missing (%v): run `make tools`, which installs Debian's chromium", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 760),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelRun := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelRun(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// Run runs steps in the browser and fails the test on the first error.
func Run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("%s (at %s): %v", what, loc, err)
	}
}

// Get runs one action in the browser and returns its value.
func Get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("%s (at %s): %v", what, loc, err)
	}
	return v
}

// WaitURL waits until the page's URL contains part (after a click that navigates)
// and the document has loaded.
func WaitURL(part string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		deadline := time.Now().Add(15 * time.Second)
		for {
			loc, err := chromedp.Location()(ctx, tg)
			if err != nil {
				return err
			}
			if strings.Contains(loc, part) {
				ready, err := chromedp.Evaluate[string](`document.readyState`)(ctx, tg)
				if err == nil && ready == "complete" {
					return nil
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the URL is %s, not a loaded page whose URL contains %q", loc, part)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// Navigates runs click (an action that makes the page navigate, such as a click on a
// submit button) and waits until a new document has loaded, even one at the same URL.
func Navigates(click chromedp.Action[chromedp.Void]) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := chromedp.Evaluate[bool](`window.__oldDocument = true`)(ctx, tg); err != nil {
			return err
		}
		if _, err := click(ctx, tg); err != nil {
			return err
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			fresh, err := chromedp.Evaluate[bool](`window.__oldDocument !== true && document.readyState === "complete"`)(ctx, tg)
			if err == nil && fresh {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no new page loaded within 15s (last error %v)", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// Shot writes a full-page screenshot to ShotsDir/name.png.
func Shot(t *testing.T, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return err
		}
		dir, err := ShotsDir()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		t.Logf("screenshot %s", filepath.Join(dir, name+".png"))
		return os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
	})
}

// ShotsDir returns the one folder every browser test writes its screenshots to,
// console/testdata/shots in the module (git ignores it), found from the working
// directory, which go test sets to the package's.
func ShotsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "console", "testdata", "shots"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("consoletest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// BodyText returns the text of the page's body.
func BodyText(t *testing.T, ctx context.Context) string {
	t.Helper()
	return Get(t, ctx, "read the page", chromedp.Text(chromedp.CSS("body")))
}

package identity_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
)

// listed is an identity bucket on a real server, with a Store to write it and a
// Lister to list it.
func listed(t *testing.T) (*identity.Store, *identity.Lister) {
	t.Helper()
	srv := natstest.Start(t, nil)
	nc := srv.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), natsconf.BucketIdentity)
	if err != nil {
		t.Fatal(err)
	}
	return identity.NewStore(kv), identity.NewLister(nc, natsconf.BucketIdentity)
}

// listAll follows ListTenants' cursors to the end and returns every page.
func listAll(t *testing.T, l *identity.Lister, q identity.ListQuery) [][]identity.Tenant {
	t.Helper()
	var pages [][]identity.Tenant
	for range 100 {
		page, err := l.ListTenants(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, page.Tenants)
		if page.Next == 0 {
			return pages
		}
		q.After = page.Next
	}
	t.Fatalf("ListTenants did not end within 100 pages")
	return nil
}

func ids(pages [][]identity.Tenant) []string {
	var out []string
	for _, p := range pages {
		for _, t := range p {
			out = append(out, t.TenantID)
		}
	}
	return out
}

func TestListTenantsPagesThroughTheBucket(t *testing.T) {
	store, lister := listed(t)
	ctx := context.Background()
	var created []string
	for i := range 23 {
		tn, _, hash := newTenant(t)
		tn.Plan = identity.Plans[i%3]
		if err := store.Create(ctx, tn, hash); err != nil {
			t.Fatal(err)
		}
		created = append(created, tn.TenantID)
	}

	pages := listAll(t, lister, identity.ListQuery{Limit: 10})
	if len(pages) != 3 || len(pages[0]) != 10 || len(pages[1]) != 10 || len(pages[2]) != 3 {
		t.Fatalf("pages of %v tenants, want 10, 10, 3", lens(pages))
	}
	if got := ids(pages); !slices.Equal(got, created) {
		t.Fatalf("listed %v\nwant the tenants in creation order %v", got, created)
	}

	if pages := listAll(t, lister, identity.ListQuery{Limit: 23}); len(pages) != 1 {
		t.Errorf("a page as large as the bucket is followed by %d more", len(pages)-1)
	}

	// A query matches the plan (and the id); the key records in the bucket never show.
	pro := ids(listAll(t, lister, identity.ListQuery{Match: "pro", Limit: 50}))
	if len(pro) != 8 {
		t.Fatalf("plan pro lists %d tenants, want 8", len(pro))
	}
	one := ids(listAll(t, lister, identity.ListQuery{Match: created[5][4:], Limit: 50}))
	if !slices.Equal(one, []string{created[5]}) {
		t.Fatalf("searching an id lists %v", one)
	}

	// A status change moves the tenant to the end; a suspended tenant is found by status.
	tn, err := store.Get(ctx, created[0])
	if err != nil {
		t.Fatal(err)
	}
	tn.Status = identity.StatusSuspended
	if err := store.Update(ctx, tn); err != nil {
		t.Fatal(err)
	}
	all := ids(listAll(t, lister, identity.ListQuery{Limit: 50}))
	if len(all) != 23 || all[22] != created[0] {
		t.Fatalf("after an update the list is %v", all)
	}
	if got := ids(listAll(t, lister, identity.ListQuery{Match: identity.StatusSuspended, Limit: 50})); !slices.Equal(got, []string{created[0]}) {
		t.Fatalf("suspended tenants: %v", got)
	}
}

func TestListTenantsBoundsTheRecordsOnePageReads(t *testing.T) {
	store, lister := listed(t)
	ctx := context.Background()
	for i := range 12 {
		tn, _, hash := newTenant(t)
		if i == 10 {
			tn.Plan = "enterprise"
		}
		if err := store.Create(ctx, tn, hash); err != nil {
			t.Fatal(err)
		}
	}
	// One match among 12 tenants (36 records: each has a key index and a key), 15
	// records read per page: two empty pages that offer more, then the match.
	pages := listAll(t, lister, identity.ListQuery{Match: "enterprise", Limit: 10, Examine: 15})
	if fmt.Sprint(lens(pages)) != "[0 0 1]" {
		t.Fatalf("pages of %v tenants, want [0 0 1]", lens(pages))
	}
	if _, err := lister.ListTenants(ctx, identity.ListQuery{Limit: identity.MaxListLimit + 1}); err == nil {
		t.Fatal("a page larger than MaxListLimit was accepted")
	}
	// Deleted tenants are not listed; an empty bucket or a cursor past the end is an
	// empty last page.
	tn, _, hash := newTenant(t)
	if err := store.Create(ctx, tn, hash); err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, tn.TenantID, hash); err != nil {
		t.Fatal(err)
	}
	if got := ids(listAll(t, lister, identity.ListQuery{Limit: 50})); len(got) != 12 || slices.Contains(got, tn.TenantID) {
		t.Fatalf("after a delete the list is %v", got)
	}
	page, err := lister.ListTenants(ctx, identity.ListQuery{Limit: 5, After: 1 << 40})
	if err != nil || len(page.Tenants) != 0 || page.Next != 0 {
		t.Fatalf("past the end: %v %v", page, err)
	}
}

func lens(pages [][]identity.Tenant) []int {
	var n []int
	for _, p := range pages {
		n = append(n, len(p))
	}
	return n
}

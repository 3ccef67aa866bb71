package patient

import (
	"context"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// TestCountedPageKnowsItWasCut: when a counted search has more matches past the position than
// its page's lookup is given, pageBound says so (cut), on both databases, so that a page
// coming back short (a counted match changed since the count) is read again through the
// indexes instead of ending the results early; and when it has no more, it does not.
func TestCountedPageKnowsItWasCut(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := NewStore(d)
		ctx := context.Background()
		if err := s.Seed(ctx, 200, 5, nil); err != nil {
			t.Fatal(err)
		}
		cond, args := s.searchCondition(ListQuery{BornFrom: "1900-01-01", BornTo: "2100-12-31"}) // every record
		for _, c := range []struct {
			limit   int
			after   int64
			wantCut bool
		}{
			{limit: 50, wantCut: true},                                      // 200 matches past the start
			{limit: 10, after: 200 - int64(10+1+PageSlack), wantCut: false}, // exactly the lookup's positions left
			{limit: 10, after: 200 - int64(10+2+PageSlack), wantCut: true},  // one more than that
		} {
			total, found, err := s.countMatches(ctx, s.db, cond, args, c.after, countedPositions(c.limit))
			if err != nil {
				t.Fatal(err)
			}
			if total.N != 200 || total.Estimated {
				t.Fatalf("total %+v, want exactly 200", total)
			}
			_, fromArgs, bound, boundArgs, _, cut := s.pageBound(found, total, c.after, c.limit)
			if cut != c.wantCut {
				t.Fatalf("limit %d after seq %d: cut = %v, want %v (%d positions found; %v %v %v)", c.limit, c.after, cut, c.wantCut, len(found), fromArgs, bound, boundArgs)
			}
		}
	})
}

package seqmark_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/seqmark"
)

// TestMarks: a number past the mark moves it a block ahead on disk (one write per block);
// a database brought back to an earlier point, raised to the marks, hands out the next
// number above every number handed out before.
func TestMarks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d, err := db.Open(ctx, "sqlite://"+filepath.Join(dir, "x.db"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Exec(`CREATE TABLE things (seq INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	path := seqmark.File(dir, "x")
	m, err := seqmark.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	insert := func() int64 {
		var seq int64
		if err := d.Get(&seq, `INSERT INTO things (v) VALUES ('x') RETURNING seq`); err != nil {
			t.Fatal(err)
		}
		if err := m.Issued("things", seq); err != nil {
			t.Fatal(err)
		}
		return seq
	}
	for range 3 {
		insert()
	}
	if got, _ := seqmark.Read(path); got["things"] != 1+seqmark.Block {
		t.Fatalf("marks on disk %v, want %d", got, 1+seqmark.Block)
	}
	// Back to an earlier point: the rows and the counter are gone.
	if _, err := d.Exec(`DELETE FROM things; UPDATE sqlite_sequence SET seq = 0 WHERE name = 'things'`); err != nil {
		t.Fatal(err)
	}
	marks, err := seqmark.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RaiseSequences(ctx, d, marks); err != nil {
		t.Fatal(err)
	}
	if seq := insert(); seq != 2+seqmark.Block {
		t.Fatalf("after the raise the next number is %d, want %d", seq, 2+seqmark.Block)
	}
	// A counter that has no row yet gets one; a table without AUTOINCREMENT is left alone.
	if _, err := d.Exec(`CREATE TABLE empty (seq INTEGER PRIMARY KEY AUTOINCREMENT); CREATE TABLE plain (seq INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if err := db.RaiseSequences(ctx, d, map[string]int64{"empty": 50, "plain": 50}); err != nil {
		t.Fatal(err)
	}
	var seq int64
	if err := d.Get(&seq, `INSERT INTO empty DEFAULT VALUES RETURNING seq`); err != nil || seq != 51 {
		t.Fatalf("empty table's first number %d %v", seq, err)
	}
}

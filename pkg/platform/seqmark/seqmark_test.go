package seqmark_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
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

// TestMarksOnPostgres: the same on PostgreSQL, whose counters are identity sequences — a
// point-in-time recovery brings the sequence back with the rows; raised to the marks, the
// next number is above every number handed out before. A sequence already past a mark, and
// a table without an identity column, are left alone.
func TestMarksOnPostgres(t *testing.T) {
	ctx := context.Background()
	d := dbtest.Open(t, db.Postgres, nil)
	if _, err := d.Exec(`CREATE TABLE things (seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE, v TEXT);
		CREATE TABLE fresh (seq BIGINT GENERATED ALWAYS AS IDENTITY); CREATE TABLE plain (seq BIGINT)`); err != nil {
		t.Fatal(err)
	}
	path := seqmark.File(t.TempDir(), "x")
	m, err := seqmark.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	insert := func(table string) int64 {
		var seq int64
		if err := d.Get(&seq, `INSERT INTO `+table+` DEFAULT VALUES RETURNING seq`); err != nil {
			t.Fatal(err)
		}
		if err := m.Issued(table, seq); err != nil {
			t.Fatal(err)
		}
		return seq
	}
	for range 3 {
		insert("things")
	}
	// Back to an earlier point, as a recovery to before the inserts leaves it.
	if _, err := d.Exec(`DELETE FROM things; ALTER TABLE things ALTER COLUMN seq RESTART WITH 1`); err != nil {
		t.Fatal(err)
	}
	marks, err := seqmark.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RaiseSequences(ctx, d, marks); err != nil {
		t.Fatal(err)
	}
	if seq := insert("things"); seq != 2+seqmark.Block {
		t.Fatalf("after the raise the next number is %d, want %d", seq, 2+seqmark.Block)
	}
	// Never lowered: a floor below the sequence changes nothing.
	if err := db.RaiseSequences(ctx, d, map[string]int64{"things": 5, "fresh": 50, "plain": 50, "missing": 9}); err != nil {
		t.Fatal(err)
	}
	if seq := insert("things"); seq != 3+seqmark.Block {
		t.Fatalf("a lower floor moved the sequence: next %d", seq)
	}
	var seq int64
	if err := d.Get(&seq, `INSERT INTO fresh DEFAULT VALUES RETURNING seq`); err != nil || seq != 51 {
		t.Fatalf("a never-used sequence's first number after the raise: %d %v", seq, err)
	}
}

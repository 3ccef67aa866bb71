package db

import (
	"context"
	"database/sql"

	"github.com/jackc/pgx/v5"
	"github.com/jmoiron/sqlx"
)

// PlannedPerCall returns q with every statement read through it planned for its own
// arguments on PostgreSQL, on each call: pgx sends it as an unnamed statement with the
// parameter and result types it described once (QueryExecModeCacheDescribe), still one round
// trip, and PostgreSQL plans an unnamed statement with its values. The pool's other
// statements are prepared once per connection, and after five runs PostgreSQL may keep a
// generic plan for one, costed without its values: right for a lookup by key, which then
// plans nothing, wrong where the value chooses the index (a LIKE pattern, a range, an email
// whose generic plan read the trigram index). On SQLite q is returned as it is.
func (d *DB) PlannedPerCall(q sqlx.QueryerContext) sqlx.QueryerContext {
	if d.Dialect != Postgres {
		return q
	}
	return perCall{q}
}

// perCall is PlannedPerCall's querier: pgx's database/sql driver passes an argument of type
// pgx.QueryExecMode through, and pgx takes it, ahead of the statement's arguments, as the
// mode of that one call.
type perCall struct{ q sqlx.QueryerContext }

func withMode(args []any) []any {
	return append(append(make([]any, 0, len(args)+1), pgx.QueryExecModeCacheDescribe), args...)
}

func (p perCall) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return p.q.QueryContext(ctx, query, withMode(args)...)
}

func (p perCall) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	return p.q.QueryxContext(ctx, query, withMode(args)...)
}

func (p perCall) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	return p.q.QueryRowxContext(ctx, query, withMode(args)...)
}

// GenericPlanArrayLen is the fewest elements GenericPlanArray leaves in an array.
const GenericPlanArrayLen = 10

// GenericPlanArray returns xs, which must not be empty, with its last element repeated up to
// GenericPlanArrayLen, for a prepared statement that matches a key against an array
// parameter (`id = ANY($1)`) on PostgreSQL. The planner estimates such a condition as ten rows
// when it plans without the value (a generic plan) and as the array's length with it (a custom
// plan), and a prepared statement keeps its generic plan only when that costs no more than
// its custom plans did: with arrays of one to nine keys, what a busy service mostly sends,
// the statement was planned again on every call (the patient service's batched read by id:
// 67 µs of planning for 11 µs of execution, issue 20). Repeated keys cost nothing to run: an
// index scan drops an array's duplicates, and an UPDATE changes each matching row once. xs
// itself is never changed.
func GenericPlanArray[T any](xs []T) []T {
	if len(xs) >= GenericPlanArrayLen {
		return xs
	}
	// A copy: appending to xs would write into whatever its backing array holds after it.
	out := make([]T, GenericPlanArrayLen)
	for i := copy(out, xs); i < len(out); i++ {
		out[i] = xs[len(xs)-1]
	}
	return out
}

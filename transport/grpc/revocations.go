package grpctransport

import (
	"context"
	"errors"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/platform/authz"
	authv1 "github.com/pms/pms/proto/pms/auth/v1"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// RegisterRevocationServer serves feed as pms.auth.v1.RevocationService on s (a server from
// NewServer, whose stream interceptor names the caller's service from its certificate).
func RegisterRevocationServer(s *grpc.Server, feed *auth.RevocationFeed) {
	authv1.RegisterRevocationServiceServer(s, &revocationServer{feed: feed})
}

type revocationServer struct {
	authv1.UnimplementedRevocationServiceServer
	feed *auth.RevocationFeed
}

// WatchRevocations implements authv1.RevocationServiceServer. Over TLS only a service's
// client certificate may watch (the list names users and sessions); over plain text — a
// loopback listener or --insecure-plaintext, where nobody has a certificate — anyone who
// can reach the port may.
func (s *revocationServer) WatchRevocations(r *authv1.WatchRevocationsRequest, stream authv1.RevocationService_WatchRevocationsServer) error {
	ctx := stream.Context()
	if p, ok := peer.FromContext(ctx); ok {
		if _, tls := p.AuthInfo.(credentials.TLSInfo); tls && authz.PeerService(ctx) == "" {
			return status.Error(codes.PermissionDenied, "watching revocations needs a service's client certificate")
		}
	}
	if r.GetAfterSeq() < 0 {
		return status.Error(codes.InvalidArgument, "after_seq must not be negative")
	}
	err := s.feed.Watch(ctx, r.GetAfterSeq(), func(u auth.Update) error {
		return stream.Send(revocationUpdateToPB(u))
	})
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return status.Error(codes.Unavailable, "the revocation list cannot be read now")
	}
	return nil
}

func revocationUpdateToPB(u auth.Update) *authv1.RevocationUpdate {
	out := &authv1.RevocationUpdate{Reset_: u.Reset, Head: u.Head}
	for _, r := range u.Entries {
		out.Revocations = append(out.Revocations, RevocationToPB(r))
	}
	return out
}

// RevocationToPB is r as the stream and the auth topic carry it.
func RevocationToPB(r authz.Revocation) *eventsv1.Revocation {
	return &eventsv1.Revocation{Seq: r.Seq, Kind: r.Kind, UserId: r.UserID, SessionId: r.SessionID, MinVersion: r.MinVersion,
		ExceptSession: r.ExceptSession, Reason: r.Reason, At: timestamppb.New(r.At)}
}

func revocationFromPB(r *eventsv1.Revocation) authz.Revocation {
	return authz.Revocation{Seq: r.GetSeq(), Kind: r.GetKind(), UserID: r.GetUserId(), SessionID: r.GetSessionId(),
		MinVersion: r.GetMinVersion(), ExceptSession: r.GetExceptSession(), Reason: r.GetReason(), At: r.GetAt().AsTime()}
}

// FollowRevocations keeps a WatchRevocations stream open to the auth service over conn and
// folds it into table until ctx ends, reconnecting (from the last sequence applied) after
// a failure with a growing pause up to two seconds. It is how a separate process's gateway
// or service learns of revocations; the table goes stale (refusing writes) when the stream
// stays away longer than its bound.
func FollowRevocations(ctx context.Context, conn grpc.ClientConnInterface, table *authz.DenyTable, logger log.Logger) {
	client := authv1.NewRevocationServiceClient(conn)
	table.Follow()
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := followOnce(ctx, client, table)
		if ctx.Err() != nil {
			return
		}
		_ = level.Warn(logger).Log("msg", "revocation stream lost; reconnecting", "seq", table.Seq(), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}

func followOnce(ctx context.Context, client authv1.RevocationServiceClient, table *authz.DenyTable) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.WatchRevocations(ctx, &authv1.WatchRevocationsRequest{AfterSeq: table.Seq()})
	if err != nil {
		return err
	}
	for {
		u, err := stream.Recv()
		if err != nil {
			return err
		}
		entries := make([]authz.Revocation, 0, len(u.GetRevocations()))
		for _, r := range u.GetRevocations() {
			if r.GetSeq() <= 0 || (r.GetKind() != authz.RevokeUser && r.GetKind() != authz.RevokeSession) {
				return errors.New("grpctransport: a malformed revocation")
			}
			entries = append(entries, revocationFromPB(r))
		}
		auth.ApplyUpdate(table, auth.Update{Reset: u.GetReset_(), Entries: entries, Head: u.GetHead()})
	}
}

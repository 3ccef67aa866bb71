package kafkatransport

import (
	"context"
	"strings"
	"unicode/utf8"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"google.golang.org/protobuf/proto"
)

// DecodeEvent returns a DecodeRequestFunc that unmarshals a protobuf event value into a new
// T (for example *eventsv1.PatientEvent). A value that is not one is a poison message: it is
// dead-lettered.
func DecodeEvent[T proto.Message](newT func() T) DecodeRequestFunc {
	return func(_ context.Context, msg *sarama.ConsumerMessage) (any, error) {
		ev := newT()
		if err := proto.Unmarshal(msg.Value, ev); err != nil {
			return nil, errs.Wrap(errs.InvalidArgument, "the message is not a valid event", err)
		}
		return ev, nil
	}
}

// AsService is a SubscriberBefore for event consumers: work that no user asked for in that
// moment runs as the service itself, "svc:<name>" in audit rows (API.md, "Who acts").
func AsService(name string) RequestFunc {
	p := authz.Principal{Subject: "svc:" + name, Role: "service"}
	return func(ctx context.Context, _ *sarama.ConsumerMessage) context.Context {
		return authz.WithPrincipal(ctx, p)
	}
}

// storableText reports whether an event's string can be kept in a text column: UTF-8
// without NUL, which PostgreSQL refuses. A protobuf string is UTF-8 but may hold NUL, and a
// header may hold anything; an event carrying such a string is a poison message, to be
// dead-lettered at once rather than retried as a database failure.
func storableText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

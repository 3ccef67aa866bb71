package kafkatransport

import (
	"bytes"
	"context"
	"net/http"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/typed"
)

// Auth command names (the endpoint header of auth.commands).
const (
	AuthCommandCreateUser  = "CreateUser"
	AuthCommandDisableUser = "DisableUser"
)

// AuthCommands are the operations of the auth.commands topic (a staff directory feeding
// users), driving the auth endpoint set (the same endpoints, and so the same admin-only
// guard, as REST and gRPC):
//
//	CreateUser   value: the POST /users body without a password;  reply 201, the user and
//	             its one-time invite token (inviteToken, inviteExpiresAt)
//	DisableUser  value: none, {} or {"disabled":true};  headers: id;  as PATCH /users/{id}
//	             {"disabled":true};  reply 200 and the user
//
// The key is the user's email. An idempotency-key makes a repeat get the stored reply.
//
// No password travels on Kafka: a CreateUser carrying one is refused (400, the field
// "password" named; dead-lettered with the password redacted) before the service sees it —
// after the token and role checks, as every decode error, so a caller without the right
// learns nothing more. The user is invited instead, and sets its password over HTTPS.
func AuthCommands(set auth.Set) map[string]Command {
	return map[string]Command{
		AuthCommandCreateUser: {
			Endpoint: set.CreateUserEndpoint,
			Decode: func(_ context.Context, msg *sarama.ConsumerMessage) (any, error) {
				req, err := Body[auth.CreateUserRequest](msg)
				if err != nil {
					return nil, err
				}
				if req.Password != "" {
					return typed.Rejected{Err: errPasswordOnKafka}, nil
				}
				return req, nil
			},
			Encode: func(_ context.Context, resp any) (int, any) { return http.StatusCreated, resp },
		},
		AuthCommandDisableUser: {
			Endpoint: set.UpdateUserEndpoint,
			Decode: func(_ context.Context, msg *sarama.ConsumerMessage) (any, error) {
				id, err := PathParam(msg, "id")
				if err != nil {
					return nil, err
				}
				disabled := true
				req := auth.UpdateUserRequest{ID: id, Disabled: &disabled}
				if len(bytes.TrimSpace(msg.Value)) == 0 {
					return req, nil
				}
				b, err := Body[disableUserBody](msg)
				if err != nil {
					return nil, err
				}
				if b.Disabled != nil && !*b.Disabled {
					return nil, errs.Invalid(map[string]string{"disabled": "must be true (DisableUser only disables)"})
				}
				return req, nil
			},
			Encode: func(_ context.Context, resp any) (int, any) { return http.StatusOK, resp },
		},
	}
}

// errPasswordOnKafka refuses a CreateUser command that carries a password.
var errPasswordOnKafka = errs.Invalid(map[string]string{"password": "must not be sent over Kafka: omit it to invite the user"})

// disableUserBody is the optional DisableUser body: the PATCH body it stands for.
type disableUserBody struct {
	Disabled *bool `json:"disabled"`
}

// AuthTopics are the topics the auth service needs: its command topic and that topic's dead
// letters, auth.replies as a ready reply topic, and the shared audit topic.
func AuthTopics(partitions int32, replication int16) []Topic {
	return topicsOf(partitions, replication, auth.TopicCommands, auth.TopicCommands+DLQSuffix, "auth"+RepliesSuffix, TopicAudit, auth.TopicEvents)
}

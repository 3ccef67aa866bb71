package auth

// Topics of the auth service (API.md, "Kafka"). Its audit entries go to the shared audit
// topic.
const (
	// TopicCommands carries commands from outside systems, served by the same endpoints
	// as REST and gRPC.
	TopicCommands = "auth.commands"
	// TopicEvents carries the auth service's revocations (pms.events.v1.Revocation, event
	// type EventRevocation, key the user id), each published once committed, through the
	// outbox: for consumers other than the verifiers, which follow the gRPC stream.
	TopicEvents = "auth"
)

// EventRevocation is the event-type header of a revocation on TopicEvents.
const EventRevocation = "REVOCATION"

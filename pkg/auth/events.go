package auth

// Topics of the auth service (API.md, "Kafka"). Auth publishes no events of its own: its
// audit entries go to the shared audit topic.
const (
	// TopicCommands carries commands from outside systems, served by the same endpoints
	// as REST and gRPC.
	TopicCommands = "auth.commands"
)

package outbox

// ContentTypeProtobuf is the content-type header of every event.
const ContentTypeProtobuf = "application/x-protobuf"

// EventHeaders are the headers every event carries: content-type, event-type, event-id and
// x-request-id (omitted when there is no request).
func EventHeaders(eventType, eventID, requestID string) map[string]string {
	h := map[string]string{"content-type": ContentTypeProtobuf, "event-type": eventType, "event-id": eventID}
	if requestID != "" {
		h["x-request-id"] = requestID
	}
	return h
}

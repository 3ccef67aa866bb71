// Package analytics is the analytics domain: it folds every event of the patient, billing and
// audit topics into figures kept in its own database (in the transaction that records the
// event's id, so a redelivered event changes nothing), and serves them as the /summary of
// API.md ("Analytics"). It knows the other services only through their published events.
package analytics

import (
	"strings"
	"time"
)

// Event types of the patient and billing topics that move a figure; other types are counted
// as events of their topic and otherwise ignored (a newer producer may add some).
const (
	PatientCreated = "PATIENT_CREATED"
	PatientUpdated = "PATIENT_UPDATED"
	PatientDeleted = "PATIENT_DELETED"
	// PatientMerged and PatientUnmerged: a record merged into another stops counting as live,
	// and counts again once unmerged (issue 19).
	PatientMerged   = "PATIENT_MERGED"
	PatientUnmerged = "PATIENT_UNMERGED"

	AccountCreated  = "BILLING_ACCOUNT_CREATED"
	InvoiceIssued   = "INVOICE_ISSUED"
	PaymentRecorded = "PAYMENT_RECORDED"
	InvoicePaid     = "INVOICE_PAID"
	InvoiceVoided   = "INVOICE_VOIDED"
)

// OutcomeDenied is the audit outcome of a refused call.
const OutcomeDenied = "denied"

// Event is one consumed event, reduced to what the figures need. The Kafka transport builds
// it from the message (Topic, Partition, Offset) and its protobuf value.
type Event struct {
	Topic     string
	Partition int32
	Offset    int64

	// ID is the event_id the fold deduplicates on.
	ID   string
	Type string
	// OccurredAt is the event's occurred_at (an audit entry's at); it picks the day bucket.
	OccurredAt time.Time

	// Billing events.
	InvoiceID string
	Currency  string
	Subtotal  int64
	Amount    int64

	// Audit events.
	Action  string
	Outcome string

	// PossibleDuplicates is, on PATIENT_CREATED, how many registered patients the new record
	// may duplicate (issue 19's check at registration).
	PossibleDuplicates int32
}

// Access is how an audit entry counts in the access figures.
type Access int

// The access classes of an audit entry.
const (
	AccessNone Access = iota
	AccessRead
	AccessChange
)

// readWords and changeWords classify audit actions word by word ("read_invoice",
// "user_create", "audit_read"), so every service's action names fall into place.
var (
	readWords   = map[string]bool{"read": true, "search": true, "history": true, "list": true, "get": true, "summary": true}
	changeWords = map[string]bool{"create": true, "update": true, "delete": true, "issue": true, "record": true,
		"void": true, "pay": true, "disable": true, "rotate": true, "merge": true, "unmerge": true}
)

// ClassifyAction says whether an audit action reads data, changes it, or neither (login,
// logout, refresh, lockout...).
func ClassifyAction(action string) Access {
	for _, w := range strings.Split(strings.ToLower(action), "_") {
		if readWords[w] {
			return AccessRead
		}
	}
	for _, w := range strings.Split(strings.ToLower(action), "_") {
		if changeWords[w] {
			return AccessChange
		}
	}
	return AccessNone
}

// Summary is the body of GET /summary (API.md, "Analytics").
type Summary struct {
	Patients    Patients   `json:"patients"`
	Days        []Day      `json:"days"`
	Invoices    Invoices   `json:"invoices"`
	Amounts     []Amount   `json:"amounts"`
	Access      AccessFigs `json:"access"`
	Events      EventFigs  `json:"events"`
	LastEventAt *time.Time `json:"lastEventAt"`
	Lag         int64      `json:"lag"`
}

// Patients are the patient figures; Live is Registered − Deleted − Merged. Merged is the
// records merged into another now: merges less unmerges.
type Patients struct {
	Registered int64 `json:"registered"`
	Updated    int64 `json:"updated"`
	Deleted    int64 `json:"deleted"`
	Merged     int64 `json:"merged"`
	Live       int64 `json:"live"`
	// Duplicates counts the registrations that had possible duplicates (the duplicate check
	// found at least one registered patient scoring at or above the threshold, and the
	// registration went ahead: warned, or confirmed as a different person).
	Duplicates int64 `json:"duplicates"`
}

// Day is one UTC day's bucket, by the events' occurred_at.
type Day struct {
	Day            string `json:"day"`
	Registered     int64  `json:"registered"`
	Updated        int64  `json:"updated"`
	Deleted        int64  `json:"deleted"`
	InvoicesIssued int64  `json:"invoicesIssued"`
}

// Invoices count invoice events.
type Invoices struct {
	Issued int64 `json:"issued"`
	Paid   int64 `json:"paid"`
	Voided int64 `json:"voided"`
}

// Amount is money per currency in minor units: Invoiced adds an issued invoice's subtotal and
// takes it away when that invoice is voided; Paid adds payments.
type Amount struct {
	Currency string `json:"currency"`
	Invoiced int64  `json:"invoiced"`
	Paid     int64  `json:"paid"`
}

// AccessFigs come from the audit topic: successful reads and changes, and refusals.
type AccessFigs struct {
	Reads   int64 `json:"reads"`
	Changes int64 `json:"changes"`
	Denied  int64 `json:"denied"`
}

// EventFigs count the distinct events folded per topic.
type EventFigs struct {
	Patient int64 `json:"patient"`
	Billing int64 `json:"billing"`
	Audit   int64 `json:"audit"`
}

// SummaryQuery limits the days of a summary to From..To (YYYY-MM-DD, UTC, both inclusive,
// both optional). The totals are always over every event.
type SummaryQuery struct {
	From string
	To   string
}

// DayLayout is the layout of a day.
const DayLayout = "2006-01-02"

// Partition names one partition of a topic.
type Partition struct {
	Topic     string
	Partition int32
}

// Watermarks are a partition's oldest offset and its high-water mark (the next offset to be
// written).
type Watermarks struct {
	Oldest int64
	Newest int64
}

package patient

import "context"

// Service is the patient records API. Every method audits what it did (allowed, refused or
// failed) before it returns, so a successful read is always an audited read.
type Service interface {
	Create(ctx context.Context, req CreateRequest) (Patient, error)
	Get(ctx context.Context, id string) (Patient, error)
	List(ctx context.Context, q ListQuery) (Page, error)
	Update(ctx context.Context, req UpdateRequest) (Patient, error)
	Delete(ctx context.Context, req DeleteRequest) error
	History(ctx context.Context, id string) ([]Version, error)
	Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
}

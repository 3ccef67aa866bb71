package patient

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/patient/match"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/validate"
)

// Duplicate policies (--duplicate-policy, docs/matching.md "At registration").
const (
	// DuplicatePolicyWarn, the default: every registration is checked; it succeeds and says
	// how many possible duplicates it has (X-Possible-Duplicates), unless the caller asked for
	// the strict check (Prefer: duplicate-check=strict), which refuses it with 409.
	DuplicatePolicyWarn = "warn"
	// DuplicatePolicyBlock refuses every registration with possible duplicates (409) unless
	// the caller confirms them as different people.
	DuplicatePolicyBlock = "block"
	// DuplicatePolicyOff checks nothing at registration (the keys are still kept, so
	// GET /patients/{id}/duplicates and FHIR $match work).
	DuplicatePolicyOff = "off"
)

// DuplicatePolicies lists the policies, for flag validation.
var DuplicatePolicies = []string{DuplicatePolicyWarn, DuplicatePolicyBlock, DuplicatePolicyOff}

// DuplicateCheckStrict is CreateRequest.DuplicateCheck for a caller that wants the 409
// (REST and Kafka: Prefer: duplicate-check=strict; gRPC: duplicate_check "strict").
const DuplicateCheckStrict = "strict"

// ActionDuplicates records a disclosure of duplicate candidates: a refused registration's
// 409 (no subject), GET /patients/{id}/duplicates (the record as subject) and FHIR $match;
// the disclosure rows name every candidate shown.
const ActionDuplicates = "duplicates"

// Candidate limits and the grades of FHIR's match-grade extension.
const (
	// DefaultDuplicateCount and MaxDuplicateCount bound the candidates one answer shows.
	DefaultDuplicateCount = 10
	MaxDuplicateCount     = 50
	// CertainScore is the score from which a candidate is graded "certain" (FHIR
	// match-grade); below it and at or above the threshold it is "probable", and from
	// PossibleScore "possible" (shown by $match only).
	CertainScore  = 0.95
	PossibleScore = 0.2
)

// Candidate is a possible duplicate as the 409, GET /patients/{id}/duplicates and FHIR
// $match show it: the record's id, the score and its per-field reasons, and the record
// itself. A restricted record the caller holds no grant on is masked: id, MRN and
// confidentiality only, with no reasons (they would tell which of its fields agree).
type Candidate struct {
	ID      string         `json:"id"`
	Score   float64        `json:"score"`
	Grade   string         `json:"grade"`
	Reasons []match.Reason `json:"reasons"`
	Patient Patient        `json:"patient"`
}

// DuplicatesRequest asks for the scored candidates of a record (ID: GET
// /patients/{id}/duplicates) or of demographics not registered (Patient: FHIR $match).
// Count bounds the answer (0: DefaultDuplicateCount); OnlyCertain keeps only "certain"
// candidates. MinScore is the lowest score shown: 0 means the service's threshold.
type DuplicatesRequest struct {
	ID          string
	Patient     *CreateRequest
	Count       int
	OnlyCertain bool
	MinScore    float64
}

// DuplicatesResponse wraps the candidates, best first.
type DuplicatesResponse struct {
	Candidates []Candidate `json:"candidates"`
}

// grade is the FHIR match-grade of score.
func (s *service) grade(score float64) string {
	switch {
	case score >= CertainScore:
		return "certain"
	case score >= s.matcher.Threshold():
		return "probable"
	case score >= PossibleScore:
		return "possible"
	}
	return "certainly-not"
}

// scoreCandidates fetches the records sharing a blocking key with p (but exclude) through q,
// scores each, and returns those scoring at least minScore, best first.
func (s *service) scoreCandidates(ctx context.Context, q sqlx.QueryerContext, p Patient, exclude string, minScore float64) ([]Candidate, error) {
	found, err := s.store.candidates(ctx, q, p, exclude)
	if err != nil {
		return nil, err
	}
	me := s.matcher.Probe(personOf(p))
	var out []Candidate
	for _, c := range found {
		r := me.Compare(personOf(c))
		if r.Score >= minScore {
			out = append(out, Candidate{ID: c.ID, Score: r.Score, Grade: s.grade(r.Score), Reasons: r.Reasons, Patient: c})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Score > out[j].Score })
	return out, nil
}

// mask hides what a caller without a grant may not see of the restricted candidates.
func (s *service) mask(ctx context.Context, cs []Candidate) error {
	for i := range cs {
		err := s.checkAccess(ctx, cs[i].Patient)
		if errs.KindOf(err) == errs.PermissionDenied {
			p := cs[i].Patient
			cs[i].Patient = Patient{ID: p.ID, MRN: p.MRN, Confidentiality: p.Confidentiality}
			cs[i].Reasons = []match.Reason{}
		} else if err != nil {
			return err
		}
	}
	return nil
}

// disclose audits a disclosure of candidates (ActionDuplicates, subject the record they
// were found for, if any): one chained entry with a disclosure row per candidate.
func (s *service) disclose(ctx context.Context, subject string, cs []Candidate, err error) error {
	ids := make([]string, 0, len(cs)+1)
	if subject != "" {
		ids = append(ids, subject)
	}
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	ctx = withDisclosed(ctx, ids)
	_, err = readResult(s, ctx, ActionDuplicates, subject, struct{}{}, err)
	return err
}

// duplicateRefusal carries a strict check's candidates out of the registration's
// transaction, which it rolls back; refuse then turns it into the 409 (masking and the
// disclosure's audit entry need the database, which on SQLite the transaction holds).
type duplicateRefusal struct{ cs []Candidate }

func (duplicateRefusal) Error() string { return "possible duplicate" }

// checkDuplicates is the duplicate check of a registration p under the service's policy, in
// the registration's transaction tx: the number of possible duplicates (for
// X-Possible-Duplicates and the event), or a duplicateRefusal when the check is strict (the
// caller asked, or the policy blocks) and a candidate the caller did not confirm scores at or
// above the threshold; the confirmed candidates are returned for their confirm_not_duplicate
// entries once the registration commits. A strict check first locks the record's blocking
// keys (lockMatchKeys), so two registrations of one person are checked one after the other.
func (s *service) checkDuplicates(ctx context.Context, tx *sqlx.Tx, p Patient, check string, confirm []string) (n int, confirmed []string, err error) {
	if s.dupPolicy == DuplicatePolicyOff {
		return 0, nil, nil
	}
	strict := check == DuplicateCheckStrict || s.dupPolicy == DuplicatePolicyBlock
	if strict {
		if err := s.store.lockMatchKeys(ctx, tx, p); err != nil {
			return 0, nil, err
		}
	}
	cs, err := s.scoreCandidates(ctx, tx, p, "", s.matcher.Threshold())
	if err != nil {
		return 0, nil, err
	}
	if len(cs) > DefaultDuplicateCount {
		cs = cs[:DefaultDuplicateCount]
	}
	if !strict {
		return len(cs), nil, nil
	}
	ok := make(map[string]bool, len(confirm))
	for _, id := range confirm {
		ok[id] = true
	}
	unconfirmed := 0
	for _, c := range cs {
		if ok[c.ID] {
			confirmed = append(confirmed, c.ID)
		} else {
			unconfirmed++
		}
	}
	if unconfirmed > 0 {
		return 0, nil, duplicateRefusal{cs: cs}
	}
	return len(cs), confirmed, nil
}

// refuse is the 409 possible_duplicate of a refusal: the candidates masked, their disclosure
// audited, the error carrying them.
func (s *service) refuse(ctx context.Context, cs []Candidate) error {
	if err := s.mask(ctx, cs); err != nil {
		return err
	}
	if err := s.disclose(ctx, "", cs, nil); err != nil {
		return err
	}
	b, err := json.Marshal(cs)
	if err != nil {
		return errs.Wrap(errs.Internal, "internal error", err)
	}
	e := *ErrPossibleDuplicate
	e.Message = fmt.Sprintf("the patient may already be registered (%d possible duplicates); confirm they are different people with X-Confirm-Not-Duplicate", len(cs))
	e.Candidates = b
	return &e
}

// ErrPossibleDuplicate refuses a registration that looks like patients already registered
// (the error built by checkDuplicates carries them).
var ErrPossibleDuplicate = errs.New(errs.PossibleDuplicate, "the patient may already be registered")

// Duplicates lists the scored candidates of a record or of demographics (DuplicatesRequest),
// best first, restricted ones masked; audited as a disclosure of every candidate shown.
func (s *service) Duplicates(ctx context.Context, req DuplicatesRequest) (DuplicatesResponse, error) {
	ctx = withEmergencyMark(ctx)
	var bad errs.Fields
	count := req.Count
	switch {
	case count == 0:
		count = DefaultDuplicateCount
	case count < 1 || count > MaxDuplicateCount:
		bad.Add("count", fmt.Sprintf("must be between 1 and %d", MaxDuplicateCount))
	}
	minScore := req.MinScore
	if minScore == 0 {
		minScore = s.matcher.Threshold()
	}
	if minScore < 0 || minScore > 1 || math.IsNaN(minScore) {
		bad.Add("minScore", "must be between 0 and 1")
	}
	var p Patient
	var subject string
	switch {
	case req.ID != "" && req.Patient != nil:
		bad.Add("id", "give a record or demographics, not both")
	case req.ID != "":
		pid, err := ParseID(req.ID)
		if err != nil {
			bad.Add("id", "must be a UUID")
		}
		subject = pid
	case req.Patient != nil:
		p = matchDemographics(&bad, *req.Patient)
		if p.Name == "" && p.DateOfBirth == "" && p.Email == "" && p.Phone == "" && len(p.Identifiers) == 0 {
			bad.Add("patient", "must have a name, date of birth, email, phone or identifier to match on")
		}
	default:
		bad.Add("patient", "is required")
	}
	if err := bad.Err(); err != nil {
		return DuplicatesResponse{}, s.disclose(ctx, subject, nil, err)
	}
	var cs []Candidate
	var err error
	if subject != "" {
		p, err = s.store.get(ctx, subject)
		if err == nil {
			err = s.checkAccess(ctx, p) // break-glass: the record's own demographics are used
		}
	}
	if err == nil {
		cs, err = s.scoreCandidates(ctx, s.store.db, p, subject, minScore)
	}
	if err == nil && req.OnlyCertain {
		certain := cs[:0]
		for _, c := range cs {
			if c.Score >= CertainScore {
				certain = append(certain, c)
			}
		}
		cs = certain
	}
	if len(cs) > count {
		cs = cs[:count]
	}
	if err == nil {
		err = s.mask(ctx, cs)
	}
	if cs == nil {
		cs = []Candidate{}
	}
	if aerr := s.disclose(ctx, subject, cs, err); aerr != nil || err != nil {
		if err == nil {
			err = aerr
		}
		return DuplicatesResponse{}, err
	}
	return DuplicatesResponse{Candidates: cs}, nil
}

// matchDemographics validates demographics to match (FHIR $match): the create's rules, but
// every field optional, and an identifier of the MRN's system left out (the MRN says nothing
// across registrations).
func matchDemographics(bad *errs.Fields, r CreateRequest) Patient {
	p := Patient{Name: strings.TrimSpace(r.Name), Email: strings.TrimSpace(r.Email), Address: strings.TrimSpace(r.Address),
		Family: validateFamily(bad, r.Family), Given: validateGiven(bad, r.Given), Gender: validateGender(bad, r.Gender),
		Phone: validatePhone(bad, r.Phone)}
	if p.Name != "" {
		validate.Text(bad, "name", p.Name, MaxNameLen, false)
	} else {
		p.Name = displayName("", p.Family, p.Given)
	}
	if p.Email != "" {
		if msg := validate.Email(p.Email); msg != "" {
			bad.Add("email", msg)
		}
	}
	if p.Address != "" {
		validate.Text(bad, "address", p.Address, MaxAddressLen, true)
	}
	if r.DateOfBirth != "" {
		if d, msg := validate.Date(r.DateOfBirth); msg != "" {
			bad.Add("dateOfBirth", msg)
		} else {
			p.DateOfBirth = d.Format(dateLayout)
		}
	}
	var ids []Identifier
	for _, id := range r.Identifiers {
		if strings.TrimSpace(id.System) != SystemMRN {
			ids = append(ids, id)
		}
	}
	p.Identifiers = validateIdentifiers(bad, ids)
	return p
}

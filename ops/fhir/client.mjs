// The FHIR facade driven by a FHIR client nobody here wrote (npm fhir-kit-client, pinned in
// package-lock.json): capability statement, create, read, vread, update with the version,
// the conditional failure of a stale version, search with paging to the end, search by family,
// given and a birthdate range, Patient/$match (the duplicate matcher: scores and match grades),
// the patient's Account searched and read, its Invoices searched, delete, and the read of a
// deleted record. cmd/pms TestFHIRKitClient runs it against `pms all`.
//
//   FHIR_BASE=http://127.0.0.1:4004/fhir FHIR_TOKEN=<a clinician's JWT> node ops/fhir/client.mjs
//
// It prints one line per step and exits 1 at the first step that does not go as FHIR says.
import { Client } from 'fhir-kit-client';

const base = process.env.FHIR_BASE;
const token = process.env.FHIR_TOKEN;
if (!base || !token) {
  console.error('FHIR_BASE and FHIR_TOKEN are required');
  process.exit(2);
}
const client = new Client({ baseUrl: base, bearerToken: token });
const tag = `${Date.now()}`;

function check(cond, what, detail) {
  if (!cond) {
    console.error(`FAIL ${what}: ${JSON.stringify(detail)}`);
    process.exit(1);
  }
  console.log(`ok ${what}`);
}

async function status(promise) {
  try {
    await promise;
    return 200;
  } catch (e) {
    if (e.response) return e.response.status;
    throw e;
  }
}

function patient(n, id) {
  return {
    resourceType: 'Patient',
    ...(id ? { id } : {}),
    name: [{ family: `Kit${tag}`, given: [`Client${n}`] }],
    telecom: [{ system: 'email', value: `kit${tag}.${n}@example.org` }],
    address: [{ text: `${n} Main St` }],
    birthDate: '1991-02-03',
  };
}

const cap = await client.capabilityStatement();
check(cap.resourceType === 'CapabilityStatement' && cap.fhirVersion === '4.0.1', 'capability statement', cap.fhirVersion);

const created = await client.create({ resourceType: 'Patient', body: patient(0) });
check(created.resourceType === 'Patient' && created.id && created.meta.versionId === '1', 'create', created.meta);
const id = created.id;

const read = await client.read({ resourceType: 'Patient', id });
check(read.name[0].text === `Client0 Kit${tag}`, 'read', read.name);

const updated = await client.update({
  resourceType: 'Patient', id, body: { ...patient(0, id), address: [{ text: 'moved' }] },
  options: { headers: { 'If-Match': 'W/"1"' } },
});
check(updated.meta.versionId === '2' && updated.address[0].text === 'moved', 'update with version', updated.meta);

const stale = await status(client.update({
  resourceType: 'Patient', id, body: patient(0, id), options: { headers: { 'If-Match': 'W/"1"' } },
}));
check(stale === 412, 'conditional failure on a stale version', stale);

const v1 = await client.vread({ resourceType: 'Patient', id, version: '1' });
check(v1.meta.versionId === '1' && v1.address[0].text === '0 Main St', 'vread', v1.meta);

for (let n = 1; n <= 4; n++) {
  await client.create({ resourceType: 'Patient', body: patient(n) });
}
const ids = new Set();
let pages = 0;
let bundle = await client.search({ resourceType: 'Patient', searchParams: { name: `kit${tag}`, _count: 2 } });
check(bundle.type === 'searchset' && bundle.total === 5, 'search', { type: bundle.type, total: bundle.total });
while (bundle) {
  pages++;
  for (const e of bundle.entry || []) {
    if (e.search && e.search.mode === 'match') ids.add(e.resource.id);
  }
  bundle = await client.nextPage({ bundle });
}
check(ids.size === 5 && pages === 3, 'search with paging to the end', { patients: ids.size, pages });

// $match: the first patient again, her given name mistyped, her date of birth with day and
// month swapped; she is the best candidate, scored, with a match grade.
const matched = await client.operation({
  name: 'match', resourceType: 'Patient',
  input: {
    resourceType: 'Parameters',
    parameter: [
      { name: 'resource', resource: { resourceType: 'Patient', name: [{ family: `Kit${tag}`, given: ['Clinet0'] }], birthDate: '1991-03-02' } },
      { name: 'count', valueInteger: 3 },
    ],
  },
});
const best = matched.entry && matched.entry[0];
const grade = best && best.search.extension && best.search.extension.find((x) => x.url === 'http://hl7.org/fhir/StructureDefinition/match-grade');
check(matched.type === 'searchset' && best && best.resource.id === id && best.search.score >= 0.5 && grade && grade.valueCode,
  '$match', best && { id: best.resource.id, score: best.search.score, grade: grade && grade.valueCode });

const byFamily = await client.search({ resourceType: 'Patient', searchParams: { family: `kit${tag}`, given: 'client3', birthdate: 'ge1991-02' } });
check(byFamily.total === 1 && byFamily.entry[0].resource.name[0].given[0] === 'Client3', 'search by family, given and a birthdate range',
  { total: byFamily.total });

// Billing may open the account after the create's 201: poll the search, with a deadline.
let accounts;
for (const deadline = Date.now() + 30000; ; await new Promise((r) => setTimeout(r, 100))) {
  accounts = await client.search({ resourceType: 'Account', searchParams: { patient: `Patient/${id}` } });
  if (accounts.total > 0 || Date.now() > deadline) break;
}
check(accounts.total === 1 && accounts.entry[0].resource.subject[0].reference === `Patient/${id}`, 'Account search by patient', { total: accounts.total });
const account = await client.read({ resourceType: 'Account', id: accounts.entry[0].resource.id });
check(account.resourceType === 'Account' && account.status === 'active', 'Account read', account.status);
const invoices = await client.search({ resourceType: 'Invoice', searchParams: { subject: `Patient/${id}` } });
check(invoices.type === 'searchset' && invoices.total === 0, 'Invoice search by subject', { total: invoices.total });

const history = await client.resourceHistory({ resourceType: 'Patient', id });
check(history.type === 'history' && history.entry.length === 2, 'history', history.entry && history.entry.length);

await client.delete({ resourceType: 'Patient', id });
const gone = await status(client.read({ resourceType: 'Patient', id }));
check(gone === 410, 'delete, then read is 410', gone);
console.log('fhir-kit-client: all steps passed');

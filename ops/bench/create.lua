-- wrk script of ops/bench/create.sh: POST /patients (or /api/patients) with a new patient per
-- request: the email is unique (the run's tag, wrk's thread number, a counter), so none is
-- refused as a taken email, and the name, gender and date of birth are drawn from a small
-- population (48 given names, 48 family names, births 1930-2019), so the duplicate check meets
-- what a registration desk meets: a few records sharing a blocking key, not every earlier one.
-- DUPLICATES=all in the environment sends one name and one date of birth every time instead:
-- every create then shares its blocking keys with every earlier one and the check scores
-- match.MaxCandidates records, the duplicate check's worst case (the bench before
-- issue 20's eleventh session sent that).
local threads = 0
function setup(thread)
	threads = threads + 1
	thread:set("tid", threads)
end

local given = {
	female = {"Anna", "Maria", "Olga", "Sofia", "Emma", "Chloe", "Aisha", "Fatima", "Mei", "Yuki", "Priya", "Lucia",
		"Ingrid", "Hanna", "Zeynep", "Amara", "Grace", "Nadia", "Elena", "Rosa", "Leila", "Irina", "Sara", "Julia"},
	male = {"John", "Ivan", "Pedro", "Luca", "Noah", "Omar", "Ahmed", "Wei", "Hiroshi", "Arjun", "Lars", "Jonas",
		"Mehmet", "Kwame", "David", "Samuel", "Dmitri", "Carlos", "Jamal", "Felix", "Mateo", "Oscar", "Tomas", "Yusuf"},
}
local family = {"Smith", "Ivanova", "Garcia", "Rossi", "Muller", "Dubois", "Khan", "Hassan", "Wang", "Tanaka",
	"Patel", "Silva", "Nielsen", "Berg", "Yilmaz", "Okafor", "Brown", "Kowalski", "Novak", "Papadopoulos", "Cohen",
	"Nguyen", "Kim", "Santos", "Lopez", "Schmidt", "Andersen", "Ferrari", "Moreau", "Ali", "Chen", "Sato",
	"Sharma", "Costa", "Larsen", "Lindqvist", "Demir", "Mensah", "Wilson", "Horvat", "Petrov", "Fischer",
	"Martin", "Rahman", "Li", "Suzuki", "Gupta", "Pereira"}

function init(args)
	tag = args[1] or "run"
	n = 0
	all = os.getenv("DUPLICATES") == "all"
	math.randomseed(tid * 7919 + #tag)
end

function request()
	n = n + 1
	local body
	if all then
		body = string.format('{"name":"Bench Patient %d","email":"bench.%s.%d.%d@example.org","address":"1 Main St","dateOfBirth":"1990-12-10"}', n, tag, tid, n)
	else
		local gender = math.random(2) == 1 and "female" or "male"
		local names = given[gender]
		body = string.format('{"name":"%s %s","gender":"%s","email":"bench.%s.%d.%d@example.org","address":"%d Main St","dateOfBirth":"%04d-%02d-%02d"}',
			names[math.random(#names)], family[math.random(#family)], gender, tag, tid, n, math.random(200),
			math.random(1930, 2019), math.random(12), math.random(28))
	end
	return wrk.format("POST", nil, nil, body)
end

-- wrk script of ops/bench/create.sh: POST /patients (or /api/patients) with a body whose email
-- is unique per request (the run's tag, wrk's thread number, a counter), so every create is a
-- new patient and none is refused as a taken email.
local threads = 0
function setup(thread)
	threads = threads + 1
	thread:set("tid", threads)
end

function init(args)
	tag = args[1] or "run"
	n = 0
end

function request()
	n = n + 1
	local body = string.format('{"name":"Bench Patient %d","email":"bench.%s.%d.%d@example.org","address":"1 Main St","dateOfBirth":"1990-12-10"}', n, tag, tid, n)
	return wrk.format("POST", nil, nil, body)
end

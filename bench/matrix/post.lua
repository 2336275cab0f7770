-- bench/matrix/post.lua — wrk script: POSTs the JSON body in $BODY_FILE,
-- with $API_KEY as X-API-Key when set.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("API_KEY")
if key and key ~= "" then wrk.headers["X-API-Key"] = key end

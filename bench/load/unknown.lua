-- Well-formed keys that no store knows: a pool of 10,000 random free-form keys, picked at
-- random, so each costs one store query per negative_cache_ttl and the rest hit the cache.
local pool = {}
local chars = "abcdefghijklmnopqrstuvwxyz0123456789"
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
for i = 1, 10000 do
  local t = {}
  for j = 1, 40 do
    local n = math.random(#chars)
    t[j] = chars:sub(n, n)
  end
  pool[i] = "unknown-" .. table.concat(t)
end
request = function()
  wrk.headers["API-KEY"] = pool[math.random(#pool)]
  return wrk.format(nil)
end

-- Well-formed unknown keys, a new one every request: the worst case, one store query each.
local counter = 0
local salt = tostring(os.time()) .. tostring(math.random(1000000))
request = function()
  counter = counter + 1
  wrk.headers["API-KEY"] = "fresh-" .. salt .. "-" .. counter
  return wrk.format(nil)
end

-- A spray: a new random well-formed key every request, as an anonymous client trying to cut
-- capacity would send. Without the digest filter each cost one store query.
local counter = 0
local salt = tostring(os.time()) .. tostring(math.random(1000000))
request = function()
  counter = counter + 1
  wrk.headers["API-KEY"] = "spray-" .. salt .. "-" .. counter
  return wrk.format(nil)
end

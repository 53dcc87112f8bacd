-- mod_s2s_test_routes (xmpp-guard test harness)
--
-- Outgoing server-to-server connections to the domains listed in
--
--   s2s_test_routes = { ["other.test"] = 15269, ["exempt.test"] = 15269 }
--
-- go to 127.0.0.1 on the given port, without any DNS lookup. The tests use
-- it to point Prosody's dialback checks (XEP-0220: the receiving server asks
-- the sender's authoritative server whether a key is genuine) at a scripted
-- authoritative server on loopback, for made-up domains that have no DNS.
--
-- mod_s2s asks net.resolvers.service for the targets of every new outgoing
-- connection; this module wraps that constructor. Domains not listed resolve
-- as before. Loading it on several hosts wraps the constructor once.

local service = require "net.resolvers.service";
local basic = require "net.resolvers.basic";

local routes = module:get_option("s2s_test_routes", {});

local original = service.xmpp_guard_test_original or service.new;
service.xmpp_guard_test_original = original;

service.new = function (hostname, srv_name, protocol, extra)
	local port = routes[hostname];
	if port and srv_name == "xmpp-server" then
		module:log("debug", "s2s to %s goes to 127.0.0.1:%d (s2s_test_routes)", hostname, port);
		return basic.new("127.0.0.1", port, protocol, extra);
	end
	return original(hostname, srv_name, protocol, extra);
end

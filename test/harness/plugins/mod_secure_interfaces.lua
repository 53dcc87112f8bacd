-- mod_secure_interfaces (xmpp-guard test harness)
--
-- Prosody 0.12 has no core `secure_interfaces` option and Debian 12's
-- prosody-modules does not package a module of that name, so the test harness
-- carries this small one. A c2s connection whose *local* address is listed in
--
--   secure_interfaces = { "127.0.0.1", "::1" }
--
-- is treated as already encrypted (session.secure = true). That is what a
-- backend behind a TLS-terminating proxy on loopback needs: SASL PLAIN and
-- in-band registration are offered on the plain TCP stream even with
-- c2s_require_encryption = true. It never touches sessions that have started
-- or finished TLS (session.secure is then false or true, not nil).

local trusted = module:get_option_set("secure_interfaces", {});

-- "::ffff:127.0.0.1" (IPv4-mapped) counts as "127.0.0.1".
local function normalise(ip)
	return (ip:gsub("^::ffff:(%d+%.%d+%.%d+%.%d+)$", "%1"));
end

local function local_address(conn)
	if not conn then return nil; end
	local sock = conn.socket and conn:socket();
	if not (sock and sock.getsockname) then return nil; end
	local ok, ip = pcall(sock.getsockname, sock);
	if ok and type(ip) == "string" then return normalise(ip); end
	return nil;
end

-- stream-features is fired for every (re)opened c2s stream before any feature
-- module adds its element (mod_saslauth, mod_register_ibr and mod_tls hook at
-- the default priority 0); running first decides what they offer.
module:hook("stream-features", function (event)
	local session = event.origin;
	if session.type ~= "c2s_unauthed" or session.secure ~= nil then return; end
	local ip = local_address(session.conn);
	if ip and trusted:contains(ip) then
		session.secure = true;
		session.log("debug", "Local address %s is in secure_interfaces; treating the stream as secure", ip);
	end
end, 1000);

-- mod_firewall_harness (xmpp-guard test harness)
--
--   prosodyctl --config CFG mod_firewall_harness CHAIN NS LANG FILE...
--
-- Runs stanzas from stdin through rule files with the real mod_firewall, the
-- way `prosodyctl mod_firewall test` does, with three things chosen by the
-- caller instead of fixed:
--
--   CHAIN  the firewall chain fired for each stanza (deliver, preroute,
--          deliver_remote, user/...), as firewall/chains/CHAIN;
--   NS     the default namespace the stream parser is given, which is what
--          the listener sets: jabber:client for c2s, jabber:server for s2s
--          (the origin session gets the matching type, c2s or s2sin);
--   LANG   the xml:lang on the stream header, or "-" for none.
--
-- So a stanza reaches the rules exactly as the server's parser would hand it
-- over on such a stream: namespaces recorded against NS, xml:lang stamped
-- from the header. What is printed has the tester's format, so the same
-- reader parses both: each stanza the rules let through on stdout followed
-- by a blank line; each stanza sent back to the origin on stderr after
-- "** Reply:"; then "** N\tprocessed". One addition: a stanza the rules hand
-- to the router (REDIRECT, COPY, FORWARD) is written on stderr after
-- "** Routed:" instead of being routed. LOG lines go wherever the config's
-- log goes. Nothing of mod_firewall is re-implemented here: it is loaded as
-- a dependency and its own script loader is called.

local set = require "util.set";
local xmppstream = require "util.xmppstream";

local function note(...)
	io.stderr:write("** ", table.concat({ ... }, "\t"), "\n");
end

function module.command(arg)
	local chain, ns, lang = arg[1], arg[2], arg[3];
	if not (chain and ns and lang) then
		note("usage: mod_firewall_harness CHAIN NS LANG FILE...");
		return 2;
	end
	local files = {};
	for i = 4, #arg do files[#files + 1] = arg[i]; end

	-- The rules capture the router when they are compiled: replace it first.
	prosody.core_post_stanza = function(_, stanza)
		note("Routed:", "\n" .. tostring(stanza) .. "\n");
	end
	local firewall = module:depends("firewall");
	firewall.load_unload_scripts(set.new(files));

	local origin = { type = ns == "jabber:server" and "s2sin" or "c2s", notopen = true };
	function origin.send(stanza)
		note("Reply:", "\n" .. tostring(stanza) .. "\n");
	end

	local processed = 0;
	local callbacks = { default_ns = ns };
	function callbacks.streamopened(session)
		session.notopen = nil;
	end
	function callbacks.streamclosed() end
	function callbacks.error(_, name, message)
		note("Fatal error parsing XML stream: " .. tostring(name) .. ": " .. tostring(message));
	end
	function callbacks.handlestanza(_, stanza)
		processed = processed + 1;
		if not module:fire_event("firewall/chains/" .. chain, { origin = origin, stanza = stanza }) then
			print(stanza);
			print("");
		end
	end

	local stream = xmppstream.new(origin, callbacks);
	local header = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='" .. ns .. "'"
		.. (lang ~= "-" and (" xml:lang='" .. lang .. "'") or "") .. ">";
	assert(stream:feed(header));
	for line in io.lines() do
		local ok, err = stream:feed(line .. "\n");
		if not ok then
			note("Fatal XML parse error: " .. tostring(err));
			return 1;
		end
	end
	note(tostring(processed), "processed");
	return 0;
end

-- Oracle for the differential test (test/differential/xmppstream.test.ts):
-- runs many XMPP streams through the server's own stream parser, Prosody's
-- util.xmppstream (Expat in namespace mode underneath), and prints what it
-- hands to the server for each one. Nothing here re-implements parsing; this
-- script only feeds bytes in and writes down the callbacks.
--
-- Usage: <prosody's lua> xmppstream.lua [<prosody source dir>]
-- (the directory holding util/xmppstream.lua; without it, the interpreter's
-- own search path must already find Prosody's modules)
--
-- Input (stdin), repeated until end of input, one case each:
--   a header line  "<id> <c2s|s2s> <op> <op> ...\n"
--   then the case's bytes: the sum of the numeric ops, raw.
-- An op is either a byte count N (feed the next N bytes in one feed() call)
-- or "R" (a stream restart, as after STARTTLS or SASL success: the session
-- expects a new stream header and the parser is reset). Ids are words without
-- spaces.
--
-- Output (stdout): one JSON object per case, one line each, in input order:
--   {"id":"…","events":[…]}
-- Events, in the order the parser produced them:
--   {"ev":"open","attrs":{…}}           stream header accepted (streamopened)
--   {"ev":"stanza","name":…,"ns":…,"type":…,"from":…,"to":…,"lang":…,
--    "attrs":{…},"xml":…}
--                                         a top-level element handed to the
--                                         server (handlestanza): its local
--                                         name; its namespace (the recorded
--                                         one, else the listener's default);
--                                         type, from, to and xml:lang as the
--                                         server reads them (absent: omitted);
--                                         all attributes exactly as delivered
--                                         ("xmlns" only when recorded,
--                                         "xml:lang" stamped, a namespaced
--                                         attribute keyed "uri\u0001local");
--                                         and the server's serialization
--   {"ev":"error","kind":…,…}           the parser's error callback: kind is
--                                         no-stream (detail: the element's
--                                         expanded name), parse-error (detail,
--                                         text), stream-error (the element's
--                                         name/attrs/xml, like a stanza), or
--                                         invalid-top-level-element
--   {"ev":"close"}                       </stream:stream> (streamclosed)
--   {"ev":"restart"}                     an "R" op was applied
--   {"ev":"feed-fail","err":…}           feed() returned failure (Expat's
--                                         error message); the case stops here,
--                                         as the server drops the connection
--   {"ev":"lua-error","err":…}           this script or the module raised
-- The caller decides what is fatal: this script reports, it does not judge.

local source_dir = arg[1];
if source_dir and source_dir ~= "" then
	-- The same search path the server's launcher sets up: its own tree first.
	package.path = source_dir .. "/?.lua;" .. package.path;
	package.cpath = source_dir .. "/?.so;" .. package.cpath;
end

local xmppstream = require "util.xmppstream";
local json = require "util.json";

-- What the c2s and s2s listeners configure: the stream's default namespace,
-- and the per-stanza child-element cap they pass to the parser.
local DEFAULT_NS = { c2s = "jabber:client", s2s = "jabber:server" };
local MAX_CHILD_ELEMENTS = 25000;

-- A plain copy of an attribute table (string keys only), JSON-ready.
local function copy_attrs(attr)
	local out = {};
	for k, v in pairs(attr) do
		if type(k) == "string" then out[k] = v; end
	end
	return out;
end

local function element_event(ev, el, default_ns)
	local attr = el.attr;
	ev.name = el.name;
	ev.ns = attr.xmlns or default_ns;
	ev.type, ev.from, ev.to, ev.lang = attr.type, attr.from, attr.to, attr["xml:lang"];
	ev.attrs = copy_attrs(attr);
	ev.xml = tostring(el);
	return ev;
end

local function run_case(kind, ops, bytes)
	local events = {};
	local function add(ev) events[#events + 1] = ev; end

	local callbacks = {
		default_ns = DEFAULT_NS[kind];
		streamopened = function (session, attr)
			session.notopen = nil;
			add({ ev = "open", attrs = copy_attrs(attr) });
		end;
		streamclosed = function ()
			add({ ev = "close" });
		end;
		handlestanza = function (_, stanza)
			add(element_event({ ev = "stanza" }, stanza, DEFAULT_NS[kind]));
		end;
		error = function (_, err_kind, data, text)
			if err_kind == "stream-error" and type(data) == "table" then
				add(element_event({ ev = "error", kind = err_kind }, data, DEFAULT_NS[kind]));
			else
				add({ ev = "error", kind = err_kind,
					detail = data ~= nil and tostring(data) or nil,
					text = text ~= nil and tostring(text) or nil });
			end
		end;
	};
	local session = { notopen = true };
	local stream = xmppstream.new(session, callbacks, nil, { max_elements = MAX_CHILD_ELEMENTS });

	local pos = 1;
	for _, op in ipairs(ops) do
		if op == "R" then
			session.notopen = true;
			stream:reset();
			add({ ev = "restart" });
		else
			local n = tonumber(op);
			local chunk = bytes:sub(pos, pos + n - 1);
			pos = pos + n;
			local ok, err = stream:feed(chunk);
			if not ok then
				add({ ev = "feed-fail", err = tostring(err) });
				break;
			end
		end
	end
	return events;
end

-- One line per case, flushed as it is written: the caller may wait for each.
io.stdout:setvbuf("line");
while true do
	local header = io.read("l");
	if header == nil then break; end
	if header ~= "" then
		local words = {};
		for w in header:gmatch("%S+") do words[#words + 1] = w; end
		local id, kind = words[1], words[2];
		if not DEFAULT_NS[kind] then
			io.stderr:write("xmppstream.lua: bad case header: ", header, "\n");
			os.exit(2);
		end
		local ops, total = {}, 0;
		for i = 3, #words do
			local op = words[i];
			if op ~= "R" then
				local n = tonumber(op);
				if not n or n < 0 or n % 1 ~= 0 then
					io.stderr:write("xmppstream.lua: bad op in case ", id, ": ", op, "\n");
					os.exit(2);
				end
				total = total + n;
			end
			ops[#ops + 1] = op;
		end
		local bytes = total > 0 and io.read(total) or "";
		if bytes == nil or #bytes ~= total then
			io.stderr:write("xmppstream.lua: input ended inside case ", id, "\n");
			os.exit(2);
		end
		local ok, events = pcall(run_case, kind, ops, bytes);
		if not ok then events = { { ev = "lua-error", err = tostring(events) } }; end
		io.write('{"id":', json.encode(id), ',"events":', json.encode_array(events), "}\n");
	end
end
io.stdout:flush();

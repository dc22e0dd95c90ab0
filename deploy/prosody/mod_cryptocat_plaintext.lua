-- mod_cryptocat_plaintext: a Prosody MUC module that relays only Cryptocat ciphertext.
--
-- A groupchat message, or a private message through a room, passes only if it carries
-- exactly one <payload xmlns="urn:xmpp:cryptocat:1"> whose text is well-formed base64,
-- and no <body/>, <subject/> or any other element besides the MUC <x/> Prosody adds and an
-- optional XEP-0359 <origin-id/>. Anything else gets a `modify/policy-violation` error
-- back to the sender and reaches nobody. (The envelope inside the base64 is not decoded
-- here; cryptocat-server checks that too.)
--
-- Load it on the MUC component:
--   Component "conference.example.org" "muc"
--     modules_enabled = { "cryptocat_plaintext" }

local st = require "util.stanza";

local NS_PAYLOAD = "urn:xmpp:cryptocat:1";
local NS_MUC_USER = "http://jabber.org/protocol/muc#user";
local NS_SID = "urn:xmpp:sid:0";
local max_payload = module:get_option_number("cryptocat_max_payload_chars", 350000);

-- Tell clients (service discovery) that rooms here relay only Cryptocat payloads.
module:add_feature(NS_PAYLOAD);

local function well_formed_base64(text)
	if #text == 0 or #text > max_payload or #text % 4 ~= 0 then return false; end
	return text:match("^[A-Za-z0-9+/]+=?=?$") ~= nil;
end

-- True when the stanza is exactly one well-formed payload (plus allowed wrappers).
local function acceptable(stanza)
	local payloads = 0;
	-- Iterate stanza.tags: :childtags() without a namespace sees only jabber:client
	-- children and would miss the payload.
	for _, tag in ipairs(stanza.tags) do
		local ns = tag.attr.xmlns;
		if tag.name == "payload" and ns == NS_PAYLOAD then
			payloads = payloads + 1;
			if #tag.tags ~= 0 or not well_formed_base64(tag:get_text() or "") then
				return false;
			end
		elseif (tag.name == "x" and ns == NS_MUC_USER) or (tag.name == "origin-id" and ns == NS_SID) then
			-- allowed wrapper
		else
			return false;
		end
	end
	return payloads == 1;
end

local function refuse(origin, stanza)
	local reply = st.error_reply(stanza, "modify", "policy-violation",
		"only Cryptocat encrypted payloads are relayed here");
	if origin and origin.full_jid then reply.attr.to = origin.full_jid; end
	if origin then origin.send(reply); end
	module:log("debug", "refused a message without a Cryptocat payload");
end

module:hook("muc-occupant-groupchat", function(event)
	if not acceptable(event.stanza) then
		refuse(event.origin, event.stanza);
		return true; -- not broadcast
	end
end, 20);

module:hook("muc-private-message", function(event)
	if not acceptable(event.stanza) then
		refuse(event.origin, event.stanza);
		return false; -- not routed
	end
end, 20);

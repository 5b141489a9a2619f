//! Chat (sent through the overlay's PlumTree; a flooded `Chat` from a peer is still taken) and
//! direct messages (flooded over the links, deduplicated and hop-limited, when unlinked).

use super::Node;
use crate::identity::{signed_bytes, signing_domain, PeerId};
use crate::interface::{CommandError, Event, LinkId};
use crate::time::Instant;
use crate::wire::{ChatBody, DirectBody, Message, MsgId, Signed, MAX_TEXT_LEN};
use core::time::Duration;
use rand_core::RngCore;
use serde::Serialize;

/// How far a chat or direct message's clock may be from ours. Old signed messages replayed after
/// they left the seen-cache fall outside it; generous, because real clocks drift.
const MESSAGE_CLOCK_WINDOW: Duration = Duration::from_secs(3600);

pub(super) fn fresh(now: Instant, unix_ms: u64) -> bool {
    unix_ms.abs_diff(now.unix_ms()) <= MESSAGE_CLOCK_WINDOW.as_millis() as u64
}

fn sign_body<B: Serialize>(node: &Node, domain: &[u8], body: &B) -> crate::identity::Signature {
    node.keys.sign(&signed_bytes(domain, &postcard::to_allocvec(body).unwrap_or_default()))
}

pub(super) fn verify_body<B: Serialize>(author: &PeerId, domain: &[u8], signed: &Signed<B>) -> bool {
    match postcard::to_allocvec(&signed.body) {
        Ok(bytes) => author.verify(&signed_bytes(domain, &bytes), &signed.signature),
        Err(_) => false,
    }
}

impl Node {
    fn new_msg_id(&mut self) -> MsgId {
        let mut id = [0u8; 16];
        self.rng.fill_bytes(&mut id);
        MsgId(id)
    }

    fn check_text(text: &str) -> Result<(), CommandError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(CommandError::TextTooLong { len: text.len(), max: MAX_TEXT_LEN });
        }
        Ok(())
    }

    /// Sends `msg` on every established link except `except`.
    pub(super) fn flood(&mut self, msg: &Message, except: Option<LinkId>) {
        let targets: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(id, l)| Some(**id) != except && l.established().is_some())
            .map(|(id, _)| *id)
            .collect();
        for link in targets {
            self.send(link, msg);
        }
    }

    pub(super) fn send_chat(&mut self, now: Instant, text: String) -> Result<(), CommandError> {
        Self::check_text(&text)?;
        let body = ChatBody {
            msg_id: self.new_msg_id(),
            author: self.me,
            author_name: self.config.name.clone(),
            text,
            unix_ms: now.unix_ms(),
        };
        self.seen.insert(body.msg_id);
        let signature = sign_body(self, crate::identity::signing_domain::CHAT, &body);
        self.broadcast_chat(now, Signed { body, signature, hops: self.config.max_hops });
        Ok(())
    }

    pub(super) fn send_direct(&mut self, now: Instant, to: PeerId, text: String) -> Result<(), CommandError> {
        Self::check_text(&text)?;
        if to == self.me {
            return Err(CommandError::SelfTarget);
        }
        if self.peers().is_empty() {
            return Err(CommandError::NotConnected(to.short()));
        }
        let body = DirectBody { msg_id: self.new_msg_id(), author: self.me, to, text, unix_ms: now.unix_ms() };
        self.seen.insert(body.msg_id);
        let signature = sign_body(self, signing_domain::DIRECT, &body);
        let msg = Message::Direct(Signed { body, signature, hops: self.config.max_hops });
        // No link: the recipient's record routes it, or else the mesh floods it (each hop
        // forwards once, dedup by id).
        let reach = super::dht::Reach::Dial { avoid: None };
        if !self.send_over_link(now, to, msg.clone()) && !self.route_by_record(now, to, msg.clone(), reach) {
            self.flood_unrouted(&msg);
        }
        Ok(())
    }

    pub(super) fn handle_chat(&mut self, now: Instant, link: LinkId, mut chat: Signed<ChatBody>) {
        if self.seen.contains(&chat.body.msg_id) {
            self.stats.duplicate_messages += 1;
            return;
        }
        if !fresh(now, chat.body.unix_ms) {
            self.stats.stale_messages += 1;
            return;
        }
        if !verify_body(&chat.body.author, signing_domain::CHAT, &chat) {
            self.stats.bad_signatures += 1;
            return self.misbehaved(link, "chat with a bad author signature");
        }
        self.seen.insert(chat.body.msg_id);
        if chat.body.author != self.me {
            self.emit(Event::Chat {
                from: chat.body.author,
                from_name: chat.body.author_name.clone(),
                text: chat.body.text.clone(),
                msg_id: chat.body.msg_id,
            });
        }
        if chat.hops > 0 {
            chat.hops -= 1;
            self.flood(&Message::Chat(chat), Some(link));
        }
    }

    pub(super) fn handle_direct(&mut self, now: Instant, link: LinkId, mut direct: Signed<DirectBody>) {
        if self.seen.contains(&direct.body.msg_id) {
            self.stats.duplicate_messages += 1;
            return;
        }
        if !fresh(now, direct.body.unix_ms) {
            self.stats.stale_messages += 1;
            return;
        }
        if !verify_body(&direct.body.author, signing_domain::DIRECT, &direct) {
            self.stats.bad_signatures += 1;
            return self.misbehaved(link, "direct message with a bad author signature");
        }
        self.seen.insert(direct.body.msg_id);
        if direct.body.to == self.me {
            self.emit(Event::Direct {
                from: direct.body.author,
                text: direct.body.text.clone(),
                msg_id: direct.body.msg_id,
            });
            return;
        }
        if direct.hops == 0 {
            return;
        }
        direct.hops -= 1;
        let to = direct.body.to;
        let msg = Message::Direct(direct);
        let reach = super::dht::Reach::Links { from: self.links.get(&link).and_then(|l| l.peer()) };
        if !self.send_over_link(now, to, msg.clone()) && !self.route_by_record(now, to, msg.clone(), reach) {
            self.stats.flooded_messages += 1;
            self.flood(&msg, Some(link));
        }
    }

    /// A direct message or envelope with no route to its recipient: every link gets it.
    pub(super) fn flood_unrouted(&mut self, msg: &Message) {
        self.stats.flooded_messages += 1;
        self.flood(msg, None);
    }
}

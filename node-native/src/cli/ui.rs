//! Human output for the interactive prompt: lines on stdout, progress bars on stderr.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use node_core::{Event, TransferId};
use std::collections::HashMap;

/// Text from peers with control characters made visible, so a peer cannot send terminal escape
/// sequences to the user's screen.
pub fn printable(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { char::REPLACEMENT_CHARACTER } else { c }).collect()
}

/// Prints events for a person and keeps one progress bar per transfer.
pub struct Ui {
    bars: MultiProgress,
    transfers: HashMap<TransferId, ProgressBar>,
}

impl Ui {
    pub fn new() -> Self {
        Ui { bars: MultiProgress::new(), transfers: HashMap::new() }
    }

    /// Prints a line without tearing the progress bars.
    pub fn line(&self, text: &str) {
        if self.transfers.is_empty() {
            println!("{text}");
        } else {
            let _ = self.bars.println(text);
        }
    }

    fn bar(&mut self, id: TransferId, total: u64, label: String) -> &ProgressBar {
        self.transfers.entry(id).or_insert_with(|| {
            let bar = self.bars.add(ProgressBar::new(total));
            let style =
                ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(label);
            bar
        })
    }

    fn finish(&mut self, id: &TransferId) {
        if let Some(bar) = self.transfers.remove(id) {
            bar.finish_and_clear();
        }
    }

    pub fn event(&mut self, e: &Event) {
        match e {
            Event::PeerDiscovered { name, addr, .. } => self.line(&format!("· found {} at {addr}", printable(name))),
            Event::PeerConnected { peer, name, kind, addr, .. } => {
                self.line(&format!("+ {} ({}) linked over {} at {addr}", printable(name), peer.short(), kind.as_str()))
            }
            Event::PeerDisconnected { peer, reason } => {
                self.line(&format!("- {} left: {}", peer.short(), printable(reason)))
            }
            Event::Chat { from_name, from, text, .. } => {
                self.line(&format!("[{} {}] {}", printable(from_name), from.short(), printable(text)))
            }
            Event::Direct { from, text, .. } => {
                self.line(&format!("(direct from {}) {}", from.short(), printable(text)))
            }
            Event::TransferOffered { name, size, from, .. } => {
                self.line(&format!("receiving {} ({size} bytes) from {}", printable(name), from.short()))
            }
            Event::TransferStarted { transfer_id, to, .. } => {
                self.line(&format!("offering transfer {} to {}", &transfer_id.to_string()[..8], to.short()))
            }
            Event::TransferProgress { transfer_id, done, total } => {
                let label = format!("recv {}", &transfer_id.to_string()[..8]);
                self.bar(*transfer_id, *total, label).set_position(*done);
            }
            Event::TransferSent { transfer_id, sent, total, complete, to } => {
                if *complete {
                    self.finish(transfer_id);
                    self.line(&format!("✓ {} has the file (verified)", to.short()));
                } else {
                    let label = format!("send {}", &transfer_id.to_string()[..8]);
                    self.bar(*transfer_id, *total, label).set_position((*sent).min(*total));
                }
            }
            Event::TransferDone { transfer_id, path, .. } => {
                self.finish(transfer_id);
                self.line(&format!("✓ received {} (BLAKE3 verified)", printable(path)));
            }
            Event::TransferFailed { transfer_id, reason } => {
                self.finish(transfer_id);
                self.line(&format!("✗ transfer {} failed: {}", &transfer_id.to_string()[..8], printable(reason)));
            }
            Event::PeerMisbehaved { peer, reason } => {
                self.line(&format!("! {} broke the protocol: {}", peer.short(), printable(reason)))
            }
            Event::Connectivity { peer, report } => {
                let mut lines = report.summary().into_iter();
                let first = lines.next().unwrap_or_default();
                self.line(&format!("{}: {first}", peer.short()));
                for l in lines {
                    self.line(&format!("  {l}"));
                }
            }
            Event::NatDetected { report } => {
                let public = report.public.map(|a| format!(", seen from outside as {a}")).unwrap_or_default();
                self.line(&format!("NAT: {}{public}", report.nat_type.as_str()));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn escape_sequences_from_peers_are_defused() {
        assert_eq!(super::printable("a\u{1b}[2Jb\n"), "a\u{fffd}[2Jb\u{fffd}");
    }
}

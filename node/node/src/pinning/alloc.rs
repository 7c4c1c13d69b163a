//! Allocation by weighted rendezvous (highest random weight) hashing: every node ranks the
//! peers of a CID the same way from the same inputs (docs/pinning.md, Allocation).

use std::collections::{BTreeMap, BTreeSet};

use shoal_types::Constraint;

use sha2::{Digest, Sha256};

use super::state::{Peer, PinCid, PinEntry};

/// A peer that may hold pins, with its weight (free GiB, at least 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Candidate {
    pub peer: Peer,
    pub weight: f64,
}

impl Candidate {
    /// A candidate weighted by `free_bytes`.
    pub(crate) fn new(peer: Peer, free_bytes: Option<u64>) -> Self {
        let gib = free_bytes.unwrap_or(0) >> 30;
        Self {
            peer,
            weight: (gib.max(1)) as f64,
        }
    }
}

/// The peers whose labels satisfy every constraint of a pin (`key=value`, `key in (a,b)`, …
/// as in job specs).
pub(crate) fn placeable<'a>(
    peers: impl IntoIterator<Item = (Candidate, &'a BTreeMap<String, String>)>,
    constraints: &[Constraint],
) -> Vec<Candidate> {
    peers
        .into_iter()
        .filter(|(_, labels)| constraints.iter().all(|c| c.matches(labels)))
        .map(|(c, _)| c)
        .collect()
}

/// The weighted HRW score of `peer` for `cid`.
pub(crate) fn score(cid: PinCid, c: &Candidate) -> f64 {
    let mut h = Sha256::new();
    h.update(cid.0.to_bytes());
    h.update(c.peer.0.to_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    // u in (0, 1): never 0 (ln would be -inf) nor 1 (ln would be 0).
    let u = (u64::from_be_bytes(first) as f64 + 1.0) / (u64::MAX as f64 + 2.0);
    c.weight / -u.ln()
}

/// The candidates ranked for `cid`, best first; ties (equal scores) by peer id.
pub(crate) fn rank(cid: PinCid, candidates: &[Candidate]) -> Vec<Peer> {
    let mut scored: Vec<(f64, Peer)> = candidates.iter().map(|c| (score(cid, c), c.peer)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().map(|(_, p)| p).collect()
}

/// The allocation of a new pin: the top `min(rmax, n)` of the `n` candidates; `None` when
/// fewer than `rmin` candidates exist.
pub(crate) fn allocate(
    cid: PinCid,
    rmin: u32,
    rmax: u32,
    candidates: &[Candidate],
) -> Option<Vec<Peer>> {
    let ranked = rank(cid, candidates);
    if ranked.len() < rmin as usize {
        return None;
    }
    Some(ranked.into_iter().take(rmax as usize).collect())
}

/// The peer that re-allocates `cid`: the first eligible peer in its ranking.
pub(crate) fn responsible(cid: PinCid, eligible: &[Candidate]) -> Option<Peer> {
    rank(cid, eligible).into_iter().next()
}

/// A new allocation of `pin` when fewer than `min(rmax, eligible)` of its allocated peers are
/// still eligible; `None` when it should stay as it is. Kept: the allocated eligible peers,
/// in order; added: eligible peers in `holders` (they have a copy already), then the ranking.
pub(crate) fn reallocate(
    pin: &PinEntry,
    eligible: &[Candidate],
    holders: &BTreeSet<Peer>,
) -> Option<Vec<Peer>> {
    let is_eligible = |p: &Peer| eligible.iter().any(|c| c.peer == *p);
    let target = (pin.rmax as usize).min(eligible.len());
    let mut keep: Vec<Peer> = pin
        .allocations
        .iter()
        .copied()
        .filter(|p| is_eligible(p))
        .collect();
    if keep.len() >= target {
        return None;
    }
    let ranked = rank(pin.cid, eligible);
    let extra_holders = ranked.iter().filter(|p| holders.contains(p));
    let rest = ranked.iter().filter(|p| !holders.contains(p));
    for p in extra_holders.chain(rest) {
        if keep.len() >= target {
            break;
        }
        if !keep.contains(p) {
            keep.push(*p);
        }
    }
    (keep != pin.allocations).then_some(keep)
}

#[cfg(test)]
mod tests {
    use super::super::state::Version;
    use super::*;
    use cid::Cid;
    use multihash_codetable::MultihashDigest;
    use shoal_p2p::PeerId;

    fn cids(n: u32) -> Vec<PinCid> {
        (0..n)
            .map(|i| {
                let mh = multihash_codetable::Code::Sha2_256.digest(&i.to_be_bytes());
                PinCid(Cid::new_v1(0x55, mh))
            })
            .collect()
    }

    fn peers(n: usize) -> Vec<Candidate> {
        (0..n)
            .map(|_| Candidate::new(Peer(PeerId::random()), Some(10 << 30)))
            .collect()
    }

    fn entry(cid: PinCid, allocations: Vec<Peer>) -> PinEntry {
        PinEntry {
            cid,
            name: None,
            rmin: 2,
            rmax: 3,
            allocations,
            constraints: Vec::new(),
            deleted: false,
            version: Version {
                lamport: 1,
                peer: Peer(PeerId::random()),
            },
        }
    }

    #[test]
    fn every_node_computes_the_same_allocation() {
        let ps = peers(7);
        let mut shuffled = ps.clone();
        shuffled.reverse();
        shuffled.rotate_left(3);
        for c in cids(200) {
            let a = allocate(c, 2, 3, &ps).expect("enough peers");
            assert_eq!(a.len(), 3);
            assert_eq!(Some(a.clone()), allocate(c, 2, 3, &shuffled));
            assert_eq!(responsible(c, &ps), responsible(c, &shuffled));
            assert_eq!(responsible(c, &ps), Some(a[0]));
        }
        assert!(allocate(cids(1)[0], 2, 3, &ps[..1]).is_none(), "below rmin");
        assert_eq!(
            allocate(cids(1)[0], 2, 3, &ps[..2]).map(|a| a.len()),
            Some(2)
        );
    }

    #[test]
    fn constraints_keep_pins_on_matching_peers() {
        let ps = peers(6);
        let eu: BTreeMap<String, String> = [("region".to_owned(), "eu".to_owned())].into();
        let us: BTreeMap<String, String> = [("region".to_owned(), "us".to_owned())].into();
        let labelled: Vec<_> = ps
            .iter()
            .enumerate()
            .map(|(i, c)| (*c, if i % 2 == 0 { &eu } else { &us }))
            .collect();
        let want: Vec<Constraint> = vec!["region=eu".parse().expect("constraint")];
        let ok = placeable(labelled.iter().cloned(), &want);
        assert_eq!(ok.len(), 3);
        for c in cids(50) {
            let a = allocate(c, 2, 3, &ok).expect("3 eu peers");
            assert!(a.iter().all(|p| {
                ps.iter()
                    .position(|c| c.peer == *p)
                    .is_some_and(|i| i % 2 == 0)
            }));
        }
        assert_eq!(placeable(labelled.iter().cloned(), &[]).len(), 6);
        let none: Vec<Constraint> = vec!["gpu=a100".parse().expect("constraint")];
        assert!(placeable(labelled.iter().cloned(), &none).is_empty());
    }

    #[test]
    fn spreads_by_weight() {
        let mut ps = peers(4);
        ps[0].weight = 4.0;
        for p in &mut ps[1..] {
            p.weight = 1.0;
        }
        let mut firsts = [0usize; 4];
        for c in cids(4000) {
            let top = rank(c, &ps)[0];
            let i = ps.iter().position(|p| p.peer == top).expect("ranked peer");
            firsts[i] += 1;
        }
        // Weight 4 of 7 in total: about 57 % of first places; the others about 14 % each.
        assert!((2000..2600).contains(&firsts[0]), "{firsts:?}");
        for f in &firsts[1..] {
            assert!((400..800).contains(f), "{firsts:?}");
        }
    }

    #[test]
    fn joining_and_leaving_move_only_what_they_must() {
        let ps = peers(6);
        let all = cids(1000);
        let before: Vec<_> = all
            .iter()
            .map(|c| allocate(*c, 2, 3, &ps).expect("alloc"))
            .collect();
        // A newcomer: only CIDs where it ranks in the top 3 change, and only by it.
        let mut joined = ps.clone();
        joined.push(Candidate::new(Peer(PeerId::random()), Some(10 << 30)));
        let newcomer = joined[6].peer;
        let mut moved = 0;
        for (c, b) in all.iter().zip(&before) {
            let after = allocate(*c, 2, 3, &joined).expect("alloc");
            if after != *b {
                moved += 1;
                assert!(after.contains(&newcomer));
                let kept = after.iter().filter(|p| b.contains(p)).count();
                assert_eq!(kept, 2, "exactly one place changes hands");
            }
        }
        // Expected share: 3 of 7 places.
        assert!((330..530).contains(&moved), "{moved} of 1000 moved");
        // A peer leaves: re-allocation replaces it where it was and touches nothing else.
        let gone = ps[2].peer;
        let left: Vec<Candidate> = ps.iter().copied().filter(|c| c.peer != gone).collect();
        for (c, b) in all.iter().zip(&before) {
            let e = entry(*c, b.clone());
            match reallocate(&e, &left, &BTreeSet::new()) {
                None => assert!(!b.contains(&gone)),
                Some(new) => {
                    assert!(b.contains(&gone));
                    assert_eq!(new.len(), 3);
                    assert!(!new.contains(&gone));
                    let kept: Vec<_> = b.iter().copied().filter(|p| *p != gone).collect();
                    assert_eq!(&new[..2], &kept[..], "the others keep their copies");
                }
            }
        }
    }

    #[test]
    fn reallocation_prefers_holders_and_keeps_within_bounds() {
        let ps = peers(5);
        let c = cids(1)[0];
        let ranked = rank(c, &ps);
        let e = entry(c, ranked[..3].to_vec());
        assert_eq!(reallocate(&e, &ps, &BTreeSet::new()), None, "all there");
        // ranked[0] dies; ranked[4] still holds an old copy: it is taken before ranked[3].
        let live: Vec<Candidate> = ps.iter().copied().filter(|p| p.peer != ranked[0]).collect();
        let holders = BTreeSet::from([ranked[4]]);
        let new = reallocate(&e, &live, &holders).expect("changed");
        assert_eq!(new, vec![ranked[1], ranked[2], ranked[4]]);
        // Only two peers left: both, no error.
        let two: Vec<Candidate> = live
            .iter()
            .copied()
            .filter(|p| p.peer == ranked[1] || p.peer == ranked[3])
            .collect();
        let new = reallocate(&e, &two, &BTreeSet::new()).expect("changed");
        assert_eq!(new.len(), 2);
        // Fewer live than allocated but still at target: unchanged (no churn).
        let three: Vec<Candidate> = ps
            .iter()
            .copied()
            .filter(|p| e.allocations[1..].contains(&p.peer))
            .collect();
        assert_eq!(reallocate(&e, &three, &BTreeSet::new()), None);
    }
}

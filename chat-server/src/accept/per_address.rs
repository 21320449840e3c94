//! The cap on simultaneous connections from one IP address, so that one host cannot take
//! every file descriptor of the server.
//!
//! A connection takes a [`Permit`] before anything else is done with it and gives it back
//! when it closes; past the cap the connection is closed at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections by address, and the most one address may hold.
#[derive(Debug)]
pub(crate) struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
    max: usize,
}

/// One open connection of an address; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Permit {
    limit: Arc<PerAddress>,
    address: IpAddr,
}

impl PerAddress {
    /// At most `max` connections per address.
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::new(HashMap::new()),
            max,
        })
    }

    /// A place for one more connection of `address`, or `None` when it has `max` open.
    pub(crate) fn admit(self: &Arc<Self>, address: IpAddr) -> Option<Permit> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(address).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Permit {
            limit: self.clone(),
            address,
        })
    }

    /// How many connections `address` has open.
    #[cfg(test)]
    fn open(&self, address: IpAddr) -> usize {
        let open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        open.get(&address).copied().unwrap_or(0)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self
            .limit
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_at_its_cap_waits_for_one_of_its_connections_to_close() {
        let limit = PerAddress::new(2);
        let one: IpAddr = "10.0.0.1".parse().expect("address");
        let other: IpAddr = "10.0.0.2".parse().expect("address");
        let first = limit.admit(one).expect("first");
        let _second = limit.admit(one).expect("second");
        assert!(limit.admit(one).is_none(), "third is over the cap");
        assert!(
            limit.admit(other).is_some(),
            "another address is not affected"
        );
        drop(first);
        assert!(
            limit.admit(one).is_some(),
            "a closed connection frees its place"
        );
    }

    #[test]
    fn an_address_with_nothing_open_is_forgotten() {
        let limit = PerAddress::new(4);
        let one: IpAddr = "::1".parse().expect("address");
        drop(limit.admit(one));
        assert_eq!(limit.open(one), 0);
        assert!(limit.open.lock().expect("lock").is_empty());
    }
}

//! The prefunded dev accounts: the well-known mnemonic anvil and hardhat use.

use alloy::primitives::{Address, B256};
use alloy::signers::local::{MnemonicBuilder, PrivateKeySigner, coins_bip39::English};

use crate::error::{Error, Result};

/// The public, well-known development mnemonic. Never hold real funds with it.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// A prefunded, unlocked development account.
#[derive(Debug, Clone)]
pub struct DevAccount {
    /// The account address.
    pub address: Address,
    /// Its signer (derivation path `m/44'/60'/0'/0/{index}` of [`DEV_MNEMONIC`]).
    pub signer: PrivateKeySigner,
}

impl DevAccount {
    /// The raw private key, as `cast`/`anvil` print it.
    pub fn private_key(&self) -> B256 {
        self.signer.to_bytes()
    }
}

/// Derives the first `n` dev accounts of [`DEV_MNEMONIC`].
pub fn derive_dev_accounts(n: u32) -> Result<Vec<DevAccount>> {
    (0..n)
        .map(|index| {
            let signer = MnemonicBuilder::<English>::default()
                .phrase(DEV_MNEMONIC)
                .index(index)
                .and_then(|b| b.build())
                .map_err(|e| Error::Accounts {
                    index,
                    reason: e.to_string(),
                })?;
            Ok(DevAccount {
                address: signer.address(),
                signer,
            })
        })
        .collect()
}

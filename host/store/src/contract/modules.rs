//! The module registry's rules: a tenant's quota (modules, versions of one module, bytes of
//! components and artifacts) holds exactly, however many uploads commit at once; deleting a
//! version gives its room back and says when no stored version has its bytes any more; a
//! version stored without its artifact's size is sized once.

use std::sync::Arc;

use super::*;
use crate::{ModuleQuota, ModuleUsage, StoreError};

fn usage(b: &dyn Backend, tenant: &str, module: &str) -> ModuleUsage {
    let r = Read::ModuleUsage {
        tenant: tenant.into(),
        module: module.into(),
    };
    match read(b, r) {
        Some(Row::ModuleUsage(u)) => u,
        None => ModuleUsage::default(),
        other => panic!("a module usage read answered {other:?}"),
    }
}

fn file_uses(b: &dyn Backend, hash: &str) -> u64 {
    match read(b, Read::ModuleFileUses { hash: hash.into() }) {
        Some(Row::Count(n)) => n,
        None => 0,
        other => panic!("a file use read answered {other:?}"),
    }
}

fn sized(module: &str, size: u64, artifact_size: u64) -> ModuleVersion {
    let mut v = version(module);
    v.size = size;
    v.artifact_size = artifact_size;
    v
}

fn add(b: &dyn Backend, tenant: &str, v: ModuleVersion, quota: ModuleQuota) -> Result<u32> {
    let c = op(b, tenant, Op::AddModuleVersion { version: v, quota })?;
    Ok(c.module_version().expect("the version added").version)
}

fn delete(b: &dyn Backend, module: &str, version: u32) -> Option<String> {
    let del = Op::DeleteModuleVersion {
        module: module.into(),
        version,
    };
    op(b, TENANT, del)
        .expect("an unused version deletes")
        .files_freed()
        .expect("the delete says which files it freed")
}

fn over(r: Result<u32>) -> bool {
    matches!(r, Err(StoreError::OverQuota(_)))
}

pub fn module_quotas_hold(open: Open<'_>) {
    let b = open();
    let b = b.as_ref();
    tenant(b, TENANT);
    let quota = ModuleQuota {
        modules: 2,
        versions: 2,
        bytes: 1_000,
    };
    assert_eq!(add(b, TENANT, sized("a", 100, 200), quota).ok(), Some(1));
    assert_eq!(add(b, TENANT, sized("a", 100, 200), quota).ok(), Some(2));
    let u = usage(b, TENANT, "a");
    assert_eq!((u.modules, u.versions, u.bytes), (1, 2, 600));
    assert!(
        over(add(b, TENANT, sized("a", 1, 1), quota)),
        "versions of one module"
    );
    assert!(over(add(b, TENANT, sized("b", 300, 200), quota)), "bytes");
    let u = usage(b, TENANT, "b");
    assert_eq!(
        (u.modules, u.versions, u.bytes),
        (1, 0, 600),
        "a refusal counts nothing"
    );
    assert_eq!(
        ids(&all(
            b,
            List::Modules {
                tenant: TENANT.into()
            }
        )),
        ["a"]
    );
    assert_eq!(add(b, TENANT, sized("b", 100, 100), quota).ok(), Some(1));
    assert!(over(add(b, TENANT, sized("c", 1, 1), quota)), "modules");
    // Both versions of `a` have the same bytes: the files go with the last of them.
    assert_eq!(file_uses(b, "hash-of-a"), 2);
    assert_eq!(delete(b, "a", 1), None, "version 2 still has the bytes");
    assert_eq!(delete(b, "a", 2).as_deref(), Some("hash-of-a"));
    assert_eq!(file_uses(b, "hash-of-a"), 0);
    let u = usage(b, TENANT, "a");
    assert_eq!(
        (u.modules, u.versions, u.bytes),
        (1, 0, 200),
        "the room came back"
    );
    assert_eq!(
        ids(&all(
            b,
            List::Modules {
                tenant: TENANT.into()
            }
        )),
        ["b"]
    );
    assert_eq!(add(b, TENANT, sized("c", 1, 1), quota).ok(), Some(1));
    // Version numbers are never reused, even when every version went.
    assert_eq!(
        add(b, TENANT, sized("a", 1, 1), ModuleQuota::default()).ok(),
        Some(3)
    );

    // A version stored without its artifact's size is sized once, and counts whole.
    tenant(b, OTHER);
    let free = ModuleQuota::default();
    assert_eq!(add(b, OTHER, sized("d", 50, 0), free).ok(), Some(1));
    assert_eq!(usage(b, OTHER, "d").bytes, 50);
    let size = |n: u64| {
        let op = Op::SizeModuleVersion {
            module: "d".into(),
            version: 1,
            artifact_size: n,
        };
        commit1(b, &Changeset::op(OTHER, op)).expect("sized");
    };
    size(70);
    size(999);
    assert_eq!(usage(b, OTHER, "d").bytes, 120, "sized once");
    match read(
        b,
        Read::ModuleVersion {
            tenant: OTHER.into(),
            module: "d".into(),
            version: 1,
        },
    ) {
        Some(Row::ModuleVersion(v)) => assert_eq!(v.artifact_size, 70),
        other => panic!("{other:?}"),
    }
    assert_eq!(usage(b, TENANT, "a").bytes, 204, "b, c and a again; not d");
}

/// Uploads racing for the last room: exactly as many commit as the quota allows.
pub fn module_quotas_hold_under_concurrency(open: Open<'_>) {
    let b: Arc<dyn Backend> = open();
    tenant(b.as_ref(), TENANT);
    let quota = ModuleQuota {
        modules: 100,
        versions: 3,
        bytes: 1 << 30,
    };
    let added: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let b = b.clone();
                s.spawn(
                    move || match add(b.as_ref(), TENANT, sized("race", 10, 10), quota) {
                        Ok(_) => true,
                        Err(StoreError::OverQuota(_)) => false,
                        Err(e) => panic!("{e}"),
                    },
                )
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    assert_eq!(added.iter().filter(|a| **a).count(), 3, "{added:?}");
    let u = usage(b.as_ref(), TENANT, "race");
    assert_eq!((u.versions, u.bytes), (3, 60));
}

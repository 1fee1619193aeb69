//! What the binding tests share: running the async API from plain threads, and a small world.
#![allow(dead_code)] // each test file uses part of it

use std::future::Future;
use std::sync::Arc;

use alliance_ffi::{Alliance, Identity, NewPlan, Role};

/// Runs one async call to completion on the calling thread, as a shell's executor would.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
        .block_on(future)
}

/// A counselor's store with a plan whose client device is enrolled, and the client's store.
pub struct World {
    pub counselor: Arc<Alliance>,
    pub client: Arc<Alliance>,
    pub sam: Identity,
    pub plan_id: String,
    pub goal_id: String,
}

pub fn world() -> World {
    world_with(Alliance::open_in_memory().unwrap())
}

/// [`world`] with this store (without identity) as the client's.
pub fn world_with(client: Arc<Alliance>) -> World {
    block_on(async {
        let counselor = Alliance::open_in_memory().unwrap();
        counselor
            .init_identity("Dana".into(), Role::Counselor, None)
            .await
            .unwrap();
        let sam = client
            .init_identity("Sam".into(), Role::Client, None)
            .await
            .unwrap();
        let plan_id = counselor
            .create_plan(NewPlan {
                title: "Sleep".into(),
                client_name: "Sam".into(),
                client_member_id: Some(sam.member_id.clone()),
                client_device_id: None,
            })
            .await
            .unwrap();
        // Enrolled from the phone's code: its key is recorded, its changes need its signature.
        let code = client.enrollment_code().await.unwrap();
        counselor
            .enroll_device_from_code(
                plan_id.clone(),
                code,
                sam.member_id.clone(),
                "Sam's phone".into(),
                None,
            )
            .await
            .unwrap();
        counselor.sync_with(client.clone()).await.unwrap();
        let goal_id = client
            .propose_goal(plan_id.clone(), "Asleep before midnight".into())
            .await
            .unwrap();
        client.sync_with(counselor.clone()).await.unwrap();
        World {
            counselor,
            client,
            sam,
            plan_id,
            goal_id,
        }
    })
}

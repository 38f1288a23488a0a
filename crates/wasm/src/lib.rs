//! **shortlist** in the browser: the inference path (candidate model, exact index,
//! ranking model, the pipeline of `shortlist-pipeline`) compiled to WebAssembly,
//! loading its models from a bundle's bytes (`shortlist_model::bundle`).
//!
//! Built by `scripts/wasm/build.sh` (`wasm32-unknown-unknown`, no threads, no C++)
//! into `shortlist_wasm.js` + `shortlist_wasm_bg.wasm`; used from JavaScript as
//!
//! ```js
//! import init, { Recommender } from "./shortlist_wasm.js";
//! await init();
//! const bundle = new Uint8Array(await (await fetch("/demo/bundle")).arrayBuffer());
//! const r = new Recommender(bundle);
//! JSON.parse(r.recommend(JSON.stringify({ history: ["50", "172"], k: 10 })));
//! ```
//!
//! Requests and answers are the JSON of the server's `/v1/recommend` and `/v1/rank`
//! (see [`engine`]), so a page can send the same body to either and compare.

pub mod engine;

use wasm_bindgen::prelude::*;

/// The models of one bundle (JavaScript class `Recommender`).
#[wasm_bindgen]
pub struct Recommender {
    engine: engine::Engine,
}

#[wasm_bindgen]
impl Recommender {
    /// Loads the models of a bundle (`shortlist export bundle`, or the server's
    /// `/demo/bundle`); throws with a message naming the bad file.
    #[wasm_bindgen(constructor)]
    pub fn new(bundle: &[u8]) -> Result<Recommender, JsError> {
        let engine = engine::Engine::from_bundle(bundle).map_err(|e| JsError::new(&e))?;
        Ok(Recommender { engine })
    }

    /// A `/v1/recommend` body (JSON text) → its answer (JSON text).
    pub fn recommend(&self, request: &str) -> Result<String, JsError> {
        self.engine
            .recommend_json(request)
            .map_err(|e| JsError::new(&e))
    }

    /// A `/v1/rank` body (JSON text) → its answer (JSON text).
    pub fn rank(&self, request: &str) -> Result<String, JsError> {
        self.engine.rank_json(request).map_err(|e| JsError::new(&e))
    }

    /// The catalogue: a JSON array of `[item_id, title]`.
    pub fn items(&self) -> String {
        self.engine.items_json()
    }
}

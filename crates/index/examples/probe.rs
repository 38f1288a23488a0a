use shortlist_core::Rng;
use shortlist_index::{ExactIndex, Filter, TopKIndex};
use std::hint::black_box;
use std::time::Instant;
fn main() {
    let mut rng = Rng::new(42);
    let mut random = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
    let users = random(943 * 32);
    let index = ExactIndex::new(random(1682 * 32), 32).unwrap();
    for k in [1usize, 10, 100] {
        let mut best = f64::MAX;
        for _ in 0..20 {
            let t = Instant::now();
            for u in users.chunks_exact(32) {
                black_box(index.search(u, k, &Filter::None).ok());
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("k={k}: min {:.3} µs/query", best * 1e6 / 943.0);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        let mut best = f64::MAX;
        for _ in 0..20 {
            let t = Instant::now();
            black_box(index.search_batch(&users, 10, &|_| Filter::None).ok());
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("batch 1 thread: min {:.3} ms", best * 1e3);
    });
}

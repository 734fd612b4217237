//! The fuzz target's entry point on random and mutated inputs, so CI covers
//! the decoders without a nightly toolchain: none of them may panic.

use rand::{Rng, SeedableRng};

const SEEDS: &[&str] = &[
    "/api/v1/namespaces/d/configmaps/x\nlabelSelector=a%3Db&limit=5\n{\"data\":{\"k\":\"v\"}}",
    "/apis/apps/v1/namespaces/d/deployments/x\nfieldSelector=metadata.name%3Dx\n[{\"op\":\"test\",\"path\":\"/metadata/finalizers\",\"value\":null}]",
    "/apis/apps/v1/deployments\n\n{\"spec\":{\"template\":{\"spec\":{\"$setElementOrder/containers\":[{\"name\":\"c\"}],\"containers\":[{\"name\":\"c\",\"$patch\":\"delete\"}]}}}}",
    "/api/v1/namespaces/x/services/https:a:443/proxy/readyz\nwatch=true\na: &a [*a, *a]\nb: {c: d}",
    "/openapi/v3/apis/x/v1\nas=Table\n{\"metadata\":{\"managedFields\":[{}]},\"spec\":{\"$retainKeys\":[1]}}",
];

#[test]
fn decoders_never_panic_on_random_or_mutated_input() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6b66_6c78);
    for seed in SEEDS {
        kubeflex_testenv::http::exercise_decoders(seed.as_bytes());
    }
    for _ in 0..3000 {
        let mut bytes = SEEDS[rng.random_range(0..SEEDS.len())].as_bytes().to_vec();
        for _ in 0..rng.random_range(1..8) {
            let i = rng.random_range(0..bytes.len());
            match rng.random_range(0..3) {
                0 => bytes[i] = rng.random(),
                1 => {
                    bytes.insert(i, b"{}[]\":,$-/~0~1\n"[rng.random_range(0..15)]);
                }
                _ => {
                    bytes.remove(i);
                }
            }
            if bytes.is_empty() {
                bytes.push(b'/');
            }
        }
        kubeflex_testenv::http::exercise_decoders(&bytes);
    }
}

//! Fallback chains of real cloud engines against their stand-ins.

mod common;

use common::*;
use vttiro_asr::{Engine, FallbackEngine};
use vttiro_cloud::{build_engine, Provider};
use vttiro_cloud_mock::{Fault, Mock, MockConfig};
use vttiro_core::ErrorCode;

fn link(provider: Provider, base_url: String) -> vttiro_asr::EngineFactory {
    Box::new(move || build_engine(config(provider, &base_url)).map(|e| e as Box<dyn Engine>))
}

#[test]
fn when_deepgram_refuses_the_key_openai_transcribes_and_usage_says_so() {
    let deepgram = Mock::deepgram(MockConfig::new("not-our-key"));
    let openai = Mock::openai(MockConfig::new(KEY));
    let mut chain = FallbackEngine::new();
    chain.push("deepgram", link(Provider::Deepgram, deepgram.base_url()));
    chain.push("openai", link(Provider::OpenAi, openai.base_url()));
    let transcript = run(&mut chain, &jfk_one_window(), &english()).unwrap();
    assert_eq!(bare_words(&transcript).join(" "), JFK_WORDS);
    assert_eq!(chain.backend(), "openai");
    let usage = chain.usage().unwrap();
    assert_eq!(usage.provider, "openai");
    assert_eq!(usage.fell_back_from.len(), 1);
    assert_eq!(usage.fell_back_from[0].engine, "deepgram");
    assert_eq!(usage.fell_back_from[0].code, "provider_auth");
    assert_eq!((deepgram.requests().len(), openai.requests().len()), (1, 1));
}

#[test]
fn an_outage_falls_through_after_its_retries_and_a_dead_chain_names_every_failure() {
    let mut down = MockConfig::new(KEY);
    down.faults = vec![Fault::Hangup; 10];
    let deepgram = Mock::deepgram(down);
    let assemblyai = Mock::assemblyai(MockConfig::new(KEY));
    let mut chain = FallbackEngine::new();
    chain.push("deepgram", link(Provider::Deepgram, deepgram.base_url()));
    chain.push(
        "assemblyai",
        link(Provider::AssemblyAi, assemblyai.base_url()),
    );
    run(&mut chain, &jfk_one_window(), &english()).unwrap();
    assert_eq!(deepgram.requests().len(), 4, "all attempts are spent first");
    assert_eq!(
        chain.usage().unwrap().fell_back_from[0].code,
        "provider_unavailable"
    );

    let mut quota = MockConfig::new(KEY);
    quota.faults = vec![Fault::QuotaExhausted];
    let openai = Mock::openai(quota);
    let gemini = Mock::gemini(MockConfig::new("someone-else"));
    let mut chain = FallbackEngine::new();
    chain.push("openai", link(Provider::OpenAi, openai.base_url()));
    chain.push("gemini", link(Provider::Gemini, gemini.base_url()));
    let error = run(&mut chain, &jfk_one_window(), &english()).unwrap_err();
    // Different classes: the chain's own code is the generic engine failure.
    assert_eq!(error.code(), ErrorCode::EngineFailed);
    let message = error.to_string();
    assert!(
        message.contains("openai: openai: the account's quota"),
        "{message}"
    );
    assert!(
        message.contains("gemini: gemini: the API key was refused"),
        "{message}"
    );
    assert!(!message.contains(KEY));
}

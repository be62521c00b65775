//! `vttiro providers`: what each cloud engine offers and whether this machine can use it.
//! Key values are never printed, only which variable holds one.

use clap::Args;
use serde_json::json;
use vttiro_cloud::Provider;

use crate::config::Settings;

#[derive(Args, Debug)]
pub struct ProvidersArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ProvidersArgs, settings: &Settings) -> i32 {
    let lookup = |key: &str| std::env::var(key).ok();
    let mut rows = Vec::new();
    for provider in Provider::ALL {
        let key = vttiro_cloud::key_from(provider, &lookup).map(|(var, _)| var);
        let base_url = lookup(provider.base_url_variable())
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| provider.default_base_url().to_string());
        let models: Vec<serde_json::Value> = provider
            .models()
            .iter()
            .map(|m| {
                json!({
                    "name": m.name,
                    "default": m.name == provider.default_model(),
                    "timestamps": m.timing.as_str(),
                    "speakers": m.speakers,
                    "usd_per_minute": settings.prices.per_minute(provider, m.name),
                })
            })
            .collect();
        rows.push(json!({
            "engine": provider.name(),
            "key": key,
            "key_variables": provider.key_variables(),
            "base_url": base_url,
            "limits": provider.limits(),
            "models": models,
        }));
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("json values serialise")
        );
        return 0;
    }
    for (provider, row) in Provider::ALL.iter().zip(&rows) {
        let key = match row["key"].as_str() {
            Some(var) => format!("key set ({var})"),
            None => format!("no key (set {})", provider.key_variables().join(" or ")),
        };
        println!("{}  {key}", provider.name());
        println!("  endpoint  {}", row["base_url"].as_str().unwrap_or(""));
        println!("  limits    {}", provider.limits());
        for model in row["models"].as_array().into_iter().flatten() {
            let price = model["usd_per_minute"]
                .as_f64()
                .map(|p| format!("${p:.4}/min"))
                .unwrap_or_else(|| "price unknown".into());
            println!(
                "  {:<28} {:<9} {:<12} {price}{}",
                model["name"].as_str().unwrap_or(""),
                model["timestamps"].as_str().unwrap_or(""),
                if model["speakers"].as_bool() == Some(true) {
                    "speakers"
                } else {
                    "no speakers"
                },
                if model["default"].as_bool() == Some(true) {
                    "  (default)"
                } else {
                    ""
                }
            );
        }
    }
    println!("local  offline Whisper models (see `vttiro models list`); no key, no cost");
    0
}

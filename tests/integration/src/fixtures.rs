//! Requests shared by the tests and the benchmark.

use serde_json::{json, Value};

/// A documents envelope with one signer and one carbon copy, as the CRM sends it.
pub fn documents_envelope() -> Value {
    json!({
        "emailSubject": "Please sign the quote Q-1001",
        "documents": [{
            "documentBase64": "JVBERi0xLjQKJcOkw7zDtsOfCjEgMCBvYmoKPDwvVHlwZS9DYXRhbG9nPj4KZW5kb2JqCg==",
            "name": "Quote Q-1001",
            "fileExtension": "pdf",
            "documentId": "1"
        }],
        "recipients": {
            "signers": [{
                "email": "buyer@example.com",
                "name": "Bea Buyer",
                "recipientId": "1",
                "routingOrder": "1",
                "tabs": {"signHereTabs": [{
                    "anchorString": "/sn1/", "anchorUnits": "pixels", "anchorXOffset": "20", "anchorYOffset": "10"
                }]}
            }],
            "carbonCopies": [{"email": "sales@example.com", "name": "Sam Sales", "recipientId": "2", "routingOrder": "2"}]
        },
        "status": "sent"
    })
}

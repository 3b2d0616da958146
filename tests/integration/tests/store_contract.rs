//! The store contract (`shared::store::contract`) against DynamoDB on moto:
//! the same suite the in-memory fake passes in `shared`'s unit tests.

use integration_tests::TestEnv;
use shared::store::dynamo::DynamoStore;

#[tokio::test]
async fn the_dynamodb_store_keeps_the_store_contract() {
    let env = TestEnv::start().await;
    let store = DynamoStore::new(env.dynamo.clone(), env.table.clone());
    shared::store::contract::run_all(&store, &store, "dynamodb").await;
}

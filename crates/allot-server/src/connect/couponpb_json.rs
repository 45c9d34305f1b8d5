//! The protobuf JSON mapping of `couponpb` messages: lowerCamelCase names (the original
//! snake_case names are accepted too), int64 as strings (numbers accepted), Timestamps as
//! RFC 3339 strings, and fields at their default value left out of answers.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use super::ConnectMessage;
use crate::pb::couponpb as pb;
use crate::time::{from_timestamp, parse_rfc3339, rfc3339, to_timestamp};

fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Str(String),
        Num(i64),
        Null,
    }
    match Option::<Raw>::deserialize(d)? {
        None | Some(Raw::Null) => Ok(0),
        Some(Raw::Num(n)) => Ok(n),
        Some(Raw::Str(s)) => s
            .parse()
            .map_err(|_| de::Error::custom(format!("{s:?} is not an int64"))),
    }
}

fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<prost_types::Timestamp>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => parse_rfc3339(&s)
            .map(|t| Some(to_timestamp(t)))
            .ok_or_else(|| de::Error::custom(format!("{s:?} is not an RFC 3339 timestamp"))),
    }
}

fn ts_string(ts: &Option<prost_types::Timestamp>) -> Option<String> {
    ts.as_ref().and_then(from_timestamp).map(rfc3339)
}

fn nonzero(n: i64) -> Option<String> {
    (n != 0).then(|| n.to_string())
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("plain structs serialize")
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CreateCampaignRequestJson {
    name: String,
    #[serde(
        rename = "startTime",
        alias = "start_time",
        deserialize_with = "timestamp"
    )]
    start_time: Option<prost_types::Timestamp>,
    #[serde(
        rename = "totalCoupons",
        alias = "total_coupons",
        deserialize_with = "int64"
    )]
    total_coupons: i64,
    #[serde(rename = "endTime", alias = "end_time", deserialize_with = "timestamp")]
    end_time: Option<prost_types::Timestamp>,
    #[serde(
        rename = "perUserLimit",
        alias = "per_user_limit",
        deserialize_with = "int64"
    )]
    per_user_limit: i64,
}

impl ConnectMessage for pb::CreateCampaignRequest {
    fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let j: CreateCampaignRequestJson =
            serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        Ok(pb::CreateCampaignRequest {
            name: j.name,
            start_time: j.start_time,
            total_coupons: j.total_coupons,
            end_time: j.end_time,
            per_user_limit: j.per_user_limit,
        })
    }

    fn to_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            #[serde(skip_serializing_if = "str::is_empty")]
            name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            start_time: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            total_coupons: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            end_time: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            per_user_limit: Option<String>,
        }
        json(&Out {
            name: &self.name,
            start_time: ts_string(&self.start_time),
            total_coupons: nonzero(self.total_coupons),
            end_time: ts_string(&self.end_time),
            per_user_limit: nonzero(self.per_user_limit),
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CampaignIdJson {
    #[serde(
        rename = "campaignId",
        alias = "campaign_id",
        deserialize_with = "int64"
    )]
    campaign_id: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CampaignIdOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    campaign_id: Option<String>,
}

impl ConnectMessage for pb::CreateCampaignResponse {
    fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let j: CampaignIdJson = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        Ok(pb::CreateCampaignResponse {
            campaign_id: j.campaign_id,
        })
    }

    fn to_json(&self) -> Vec<u8> {
        json(&CampaignIdOut {
            campaign_id: nonzero(self.campaign_id),
        })
    }
}

impl ConnectMessage for pb::GetCampaignRequest {
    fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let j: CampaignIdJson = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        Ok(pb::GetCampaignRequest {
            campaign_id: j.campaign_id,
        })
    }

    fn to_json(&self) -> Vec<u8> {
        json(&CampaignIdOut {
            campaign_id: nonzero(self.campaign_id),
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CampaignJson {
    #[serde(deserialize_with = "int64")]
    id: i64,
    name: String,
    #[serde(
        rename = "startTime",
        alias = "start_time",
        deserialize_with = "timestamp"
    )]
    start_time: Option<prost_types::Timestamp>,
    #[serde(
        rename = "totalCoupons",
        alias = "total_coupons",
        deserialize_with = "int64"
    )]
    total_coupons: i64,
    #[serde(rename = "endTime", alias = "end_time", deserialize_with = "timestamp")]
    end_time: Option<prost_types::Timestamp>,
    #[serde(
        rename = "issuedCoupons",
        alias = "issued_coupons",
        deserialize_with = "int64"
    )]
    issued_coupons: i64,
    #[serde(
        rename = "perUserLimit",
        alias = "per_user_limit",
        deserialize_with = "int64"
    )]
    per_user_limit: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CampaignOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_coupons: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_coupons: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_user_limit: Option<String>,
}

impl<'a> From<&'a pb::Campaign> for CampaignOut<'a> {
    fn from(c: &'a pb::Campaign) -> Self {
        CampaignOut {
            id: nonzero(c.id),
            name: &c.name,
            start_time: ts_string(&c.start_time),
            total_coupons: nonzero(c.total_coupons),
            end_time: ts_string(&c.end_time),
            issued_coupons: nonzero(c.issued_coupons),
            per_user_limit: nonzero(c.per_user_limit),
        }
    }
}

impl ConnectMessage for pb::GetCampaignResponse {
    fn from_json(bytes: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct In {
            campaign: Option<CampaignJson>,
            #[serde(rename = "couponCodes", alias = "coupon_codes")]
            coupon_codes: Vec<String>,
        }
        let j: In = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        Ok(pb::GetCampaignResponse {
            campaign: j.campaign.map(|c| pb::Campaign {
                id: c.id,
                name: c.name,
                start_time: c.start_time,
                total_coupons: c.total_coupons,
                end_time: c.end_time,
                issued_coupons: c.issued_coupons,
                per_user_limit: c.per_user_limit,
            }),
            coupon_codes: j.coupon_codes,
        })
    }

    fn to_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            campaign: Option<CampaignOut<'a>>,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            coupon_codes: &'a [String],
        }
        json(&Out {
            campaign: self.campaign.as_ref().map(CampaignOut::from),
            coupon_codes: &self.coupon_codes,
        })
    }
}

impl ConnectMessage for pb::IssueCouponRequest {
    fn from_json(bytes: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct In {
            #[serde(
                rename = "campaignId",
                alias = "campaign_id",
                deserialize_with = "int64"
            )]
            campaign_id: i64,
            #[serde(rename = "userId", alias = "user_id")]
            user_id: String,
            #[serde(rename = "idempotencyKey", alias = "idempotency_key")]
            idempotency_key: String,
        }
        let j: In = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        Ok(pb::IssueCouponRequest {
            campaign_id: j.campaign_id,
            user_id: j.user_id,
            idempotency_key: j.idempotency_key,
        })
    }

    fn to_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            campaign_id: Option<String>,
            #[serde(skip_serializing_if = "str::is_empty")]
            user_id: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            idempotency_key: &'a str,
        }
        json(&Out {
            campaign_id: nonzero(self.campaign_id),
            user_id: &self.user_id,
            idempotency_key: &self.idempotency_key,
        })
    }
}

impl ConnectMessage for pb::IssueCouponResponse {
    fn from_json(bytes: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct In {
            #[serde(rename = "couponCode", alias = "coupon_code")]
            coupon_code: String,
        }
        let j: In = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        Ok(pb::IssueCouponResponse {
            coupon_code: j.coupon_code,
        })
    }

    fn to_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            #[serde(skip_serializing_if = "str::is_empty")]
            coupon_code: &'a str,
        }
        json(&Out {
            coupon_code: &self.coupon_code,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_accept_camel_and_snake_case_and_int64_as_string_or_number() {
        let a = pb::IssueCouponRequest::from_json(br#"{"campaignId":"42"}"#).unwrap();
        let b = pb::IssueCouponRequest::from_json(br#"{"campaign_id":42,"userId":"u1"}"#).unwrap();
        assert_eq!(a.campaign_id, 42);
        assert_eq!(b.campaign_id, 42);
        assert_eq!(b.user_id, "u1");
        assert!(pb::IssueCouponRequest::from_json(br#"{"campaignId":"x"}"#).is_err());
        let c = pb::CreateCampaignRequest::from_json(
            br#"{"name":"n","startTime":"2026-11-22T10:00:00Z","totalCoupons":"1000"}"#,
        )
        .unwrap();
        assert_eq!(c.start_time.unwrap().seconds, 1_795_341_600);
        assert_eq!(c.total_coupons, 1000);
    }

    #[test]
    fn answers_write_int64_as_strings_and_leave_defaults_out() {
        let out = pb::CreateCampaignResponse { campaign_id: 7 }.to_json();
        assert_eq!(out, br#"{"campaignId":"7"}"#);
        let out = pb::GetCampaignResponse {
            campaign: Some(pb::Campaign {
                id: 7,
                name: "n".into(),
                start_time: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: 0,
                }),
                total_coupons: 10,
                ..Default::default()
            }),
            coupon_codes: vec!["가나".into()],
        }
        .to_json();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["campaign"]["id"], "7");
        assert_eq!(v["campaign"]["totalCoupons"], "10");
        assert_eq!(v["campaign"]["startTime"], "1970-01-01T00:00:00.000Z");
        assert!(v["campaign"].get("issuedCoupons").is_none());
        assert_eq!(v["couponCodes"][0], "가나");
    }
}

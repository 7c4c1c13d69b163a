// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IJobMarket} from "./interfaces/IJobMarket.sol";
import {IOperatorRegistry} from "./interfaces/IOperatorRegistry.sol";
import {JobDraw} from "./JobDraw.sol";

/// @title JobMarket
/// @notice Shoal's job state machine: escrowed jobs, bids from staked operators, random
/// selection, commit-reveal of sealed result hashes, tally, blind mediation and optimistic
/// acceptance.
/// @dev Balance invariant: `address(this).balance == sum(open jobs' escrow and challenge bond)
/// + sum(withdrawable)`, where `withdrawable[address(0)]` holds burned money (slashed stake with
/// no honest recipient), which nobody can claim. Slashed stake arrives from the registry during
/// settlement and is credited in the same transaction; it never goes to the job's creator as
/// such (a creator that challenged and was upheld gets the challenger's reward, like anyone).
/// Storage per job is four packed slots; each bid is one slot; each commitment is one slot that
/// the reveal overwrites with the sealed result hash `keccak256(abi.encode(jobId, resultHash))`
/// (originals reveal it, mediators reveal the plain hash and the market seals it); a dispute adds
/// one slot (the pool snapshot). The plain result hash reaches the chain only in mediators'
/// reveals (after every mediator committed) and in `publishResult`.
/// Randomness: draws are armed first (`drawBlock`, kept in the phase deadline of Drawing and
/// DisputeDrawing) and made in a later block from `blockhash(drawBlock)` (see `_seed`); the draws
/// themselves are view logic in `draws` (a `JobDraw` this constructor deploys).
contract JobMarket is IJobMarket {
    uint8 public constant MAX_BIDS = 32;
    uint8 public constant MAX_MEDIATORS = 16;
    /// @dev Deal slot index of the first mediator; original bids use 0..MAX_BIDS-1.
    uint256 private constant MEDIATOR_BASE = 32;

    /// @dev Slot 0: who, when bidding ends, where the job is.
    struct Core {
        address creator;
        uint64 bidDeadline;
        JobState state;
        uint8 n;
        uint8 k;
        uint8 m;
    }

    /// @dev Slot 1: money and windows.
    struct Terms {
        uint96 maxPrice;
        uint96 collateral;
        uint32 execWindow;
        uint32 revealWindow;
    }

    /// @dev Slot 3: progress counters, current phase deadline (the draw block in Drawing and
    /// DisputeDrawing) and the revealed-bit set (bit i = deal i, bit 32+i = mediator i).
    struct Progress {
        uint64 deadline;
        uint32 challengeWindow;
        Verifier verifier;
        bool escalate;
        uint8 bidCount;
        uint8 commitCount;
        uint8 revealCount;
        uint8 winner; // index + 1 of the deal whose result was accepted; 0 = none
        uint8 medCount;
        uint8 medCommits;
        uint8 medReveals;
        uint64 revealed;
        uint8 mediators; // mediators a dispute of this job draws; 0 = `mediatorCount`
    }

    /// @dev How a settlement judges the participants it walks over.
    enum Judge {
        Truth, // correct = revealed the truth hash; other revealers are wrong
        AllRevealed, // every revealer is correct (optimistic acceptance)
        None, // nobody is judged: revealers get their collateral back, unpaid
        Dissent // no verification, but a truth is known (the originals' strict majority under
        // unanimity, or a mediator majority below confidence): its revealers are unlocked,
        // unpaid; other revealers are wrong
    }

    /// @dev Running totals of one settlement.
    struct Tab {
        uint256 jobId;
        uint96 collateral;
        uint256 escrowLeft;
        uint256 pot;
        uint8 correct;
        uint8 firstCorrect; // index + 1
        uint64 correctOriginals; // bit set of the paid original deals
        uint64 correctMediators; // bit set
        uint64 revealed;
        Judge judge;
        bytes32 truth;
        bool revealPhase;
        uint256 reward; // an upheld challenger's claim on the pot after mediator fees: its bond
    }

    IOperatorRegistry public immutable registry;
    uint8 public immutable mediatorCount;
    uint96 public immutable challengeBond;
    uint96 private immutable _minStake;
    uint32 public immutable minBidWindow;
    uint32 public immutable minExecWindow;
    uint32 public immutable minRevealWindow;
    uint16 public immutable maxCollateralFactor;
    uint16 public immutable challengeBondPercent;
    uint32 public immutable drawDelay;
    address public immutable draws;

    uint256 public nextJobId = 1;

    mapping(uint256 => Core) private _core;
    mapping(uint256 => Terms) private _terms;
    mapping(uint256 => bytes32) private _specHash;
    mapping(uint256 => Progress) private _progress;
    /// @dev jobId => deal index => operator | price << 160.
    mapping(uint256 => mapping(uint256 => uint256)) private _deals;
    /// @dev jobId => deal index => commitment, replaced by the sealed result hash on reveal.
    mapping(uint256 => mapping(uint256 => bytes32)) private _commits;
    mapping(uint256 => address) private _challenger;
    mapping(address => uint256) public withdrawable;
    /// @dev jobId => the mediator pool when its dispute was armed: arm block | eligibleCount << 64.
    mapping(uint256 => uint256) private _pools;

    constructor(
        IOperatorRegistry registry_,
        uint8 mediatorCount_,
        uint96 challengeBond_,
        uint32 minBidWindow_,
        uint32 minExecWindow_,
        uint32 minRevealWindow_,
        uint16 maxCollateralFactor_,
        uint16 challengeBondPercent_,
        uint32 drawDelay_
    ) {
        if (mediatorCount_ == 0 || mediatorCount_ > MAX_MEDIATORS || challengeBond_ == 0) {
            revert JobMarket__BadConfig(mediatorCount_, challengeBond_);
        }
        if (minBidWindow_ == 0 || minExecWindow_ == 0 || minRevealWindow_ == 0 || maxCollateralFactor_ == 0) {
            revert JobMarket__BadSafetyConfig(minBidWindow_, minExecWindow_, minRevealWindow_, maxCollateralFactor_);
        }
        registry = registry_;
        mediatorCount = mediatorCount_;
        challengeBond = challengeBond_;
        _minStake = registry_.minStake();
        minBidWindow = minBidWindow_;
        minExecWindow = minExecWindow_;
        minRevealWindow = minRevealWindow_;
        maxCollateralFactor = maxCollateralFactor_;
        challengeBondPercent = challengeBondPercent_;
        drawDelay = drawDelay_;
        draws = address(new JobDraw(registry_, _minStake));
    }

    /// @notice Accepts slashed stake from the registry only.
    receive() external payable {
        if (msg.sender != address(registry)) revert JobMarket__OnlyRegistry(msg.sender);
    }

    // =====================================================================================
    // creator
    // =====================================================================================

    function postJob(JobParams calldata params) external payable returns (uint256 jobId) {
        uint8 n = params.concurrency;
        if (n == 0 || n > MAX_BIDS) revert JobMarket__BadConcurrency(n);
        if (params.confidence == 0 || params.confidence > n) revert JobMarket__BadConfidence(params.confidence, n);
        if (params.minBids < n || params.minBids > MAX_BIDS) revert JobMarket__BadMinBids(params.minBids, n);
        if (params.maxPrice == 0) revert JobMarket__ZeroMaxPrice();
        bool optimistic = params.verifier == Verifier.Optimistic;
        if (
            params.bidWindow == 0 || params.execWindow == 0 || params.revealWindow == 0
                || (optimistic != (params.challengeWindow != 0))
        ) {
            revert JobMarket__BadWindow(
                params.bidWindow, params.execWindow, params.revealWindow, params.challengeWindow
            );
        }
        if (
            params.bidWindow < minBidWindow || params.execWindow < minExecWindow
                || params.revealWindow < minRevealWindow
        ) {
            revert JobMarket__WindowTooShort(
                params.bidWindow, params.execWindow, params.revealWindow, minBidWindow, minExecWindow, minRevealWindow
            );
        }
        uint256 maxCollateral = uint256(params.maxPrice) * maxCollateralFactor;
        if (params.collateral > maxCollateral) revert JobMarket__CollateralTooHigh(params.collateral, maxCollateral);
        if (params.specCid.length == 0) revert JobMarket__EmptySpec();
        if (params.mediators > MAX_MEDIATORS) revert JobMarket__BadMediators(params.mediators, MAX_MEDIATORS);
        uint256 escrow = uint256(n) * params.maxPrice;
        if (msg.value != escrow) revert JobMarket__WrongEscrow(msg.value, escrow);

        address creator = params.creator == address(0) ? msg.sender : params.creator;
        jobId = nextJobId++;
        uint64 bidDeadline = uint64(block.timestamp) + params.bidWindow;
        _core[jobId] = Core({
            creator: creator,
            bidDeadline: bidDeadline,
            state: JobState.Posted,
            n: n,
            k: params.confidence,
            m: params.minBids
        });
        _terms[jobId] = Terms({
            maxPrice: params.maxPrice,
            collateral: params.collateral,
            execWindow: params.execWindow,
            revealWindow: params.revealWindow
        });
        _specHash[jobId] = params.specHash;
        Progress memory p;
        p.challengeWindow = params.challengeWindow;
        p.verifier = params.verifier;
        p.escalate = params.escalate;
        p.mediators = params.mediators;
        _saveProgress(jobId, p);
        emit JobPosted(jobId, creator, params, escrow, bidDeadline);
    }

    function challenge(uint256 jobId) external payable {
        Core memory c = _loadCore(jobId);
        Progress memory p = _loadProgress(jobId);
        if (p.verifier != Verifier.Optimistic) revert JobMarket__NotOptimistic(jobId);
        if (c.state != JobState.Challengeable) revert JobMarket__WrongState(jobId, c.state);
        if (block.timestamp > p.deadline) revert JobMarket__DeadlinePassed(jobId, p.deadline);
        Terms memory t = _loadTerms(jobId);
        uint256 bond = _bondOf(c, t);
        if (msg.value != bond) revert JobMarket__WrongBond(msg.value, bond);
        _challenger[jobId] = msg.sender;
        _armDispute(jobId, c, p, msg.sender, bond);
    }

    // =====================================================================================
    // operators
    // =====================================================================================

    function bid(uint256 jobId, uint96 price) external {
        Core memory c = _loadCore(jobId);
        if (c.state != JobState.Posted) revert JobMarket__WrongState(jobId, c.state);
        if (block.timestamp > c.bidDeadline) revert JobMarket__BiddingOver(jobId, c.bidDeadline);
        if (msg.sender == c.creator) revert JobMarket__CreatorCannotBid(jobId, c.creator);
        Terms memory t = _loadTerms(jobId);
        if (price > t.maxPrice) revert JobMarket__PriceTooHigh(price, t.maxPrice);
        (bool registered, uint96 staked, uint96 free) = registry.operatorStatus(msg.sender);
        if (!registered) revert JobMarket__NotRegistered(msg.sender);
        if (free < t.collateral || staked < _minStake) {
            revert JobMarket__InsufficientStake(msg.sender, free, t.collateral > _minStake ? t.collateral : _minStake);
        }
        Progress memory p = _loadProgress(jobId);
        uint256 count = p.bidCount;
        mapping(uint256 => uint256) storage deals = _deals[jobId];
        for (uint256 i; i < count; ++i) {
            if (address(uint160(deals[i])) == msg.sender) revert JobMarket__AlreadyBid(jobId, msg.sender);
        }
        deals[count] = _pack(msg.sender, price);
        p.bidCount = uint8(count + 1);
        emit BidPlaced(jobId, msg.sender, price);
        if (count + 1 == MAX_BIDS) {
            _arm(jobId, c, p, JobState.Drawing); // full: bidding closes early
        } else {
            _saveProgress(jobId, p);
        }
    }

    function commitResult(uint256 jobId, bytes32 commitment) external {
        if (commitment == bytes32(0)) revert JobMarket__ZeroCommitment();
        Core memory c = _loadCore(jobId);
        Progress memory p = _loadProgress(jobId);
        bool mediation = c.state == JobState.Disputed;
        if (c.state != JobState.Running && !mediation) revert JobMarket__WrongState(jobId, c.state);
        if (block.timestamp > p.deadline) revert JobMarket__DeadlinePassed(jobId, p.deadline);
        uint256 idx = mediation ? _find(jobId, MEDIATOR_BASE, MEDIATOR_BASE + p.medCount) : _find(jobId, 0, c.n);
        mapping(uint256 => bytes32) storage commits = _commits[jobId];
        if (commits[idx] != bytes32(0)) revert JobMarket__AlreadyCommitted(jobId, msg.sender);
        commits[idx] = commitment;
        emit ResultCommitted(jobId, msg.sender, commitment);
        bool all;
        if (mediation) {
            all = ++p.medCommits == p.medCount;
        } else {
            all = ++p.commitCount == c.n;
        }
        if (all) {
            _startReveal(jobId, c, p);
        } else {
            _saveProgress(jobId, p);
        }
    }

    function revealResult(uint256 jobId, bytes32 sealedHash, bytes32 salt) external {
        _reveal(jobId, sealedHash, sealedHash, salt, JobState.Revealing);
    }

    function revealMediation(uint256 jobId, bytes32 resultHash, bytes32 salt) external {
        _reveal(jobId, resultHash, _sealed(jobId, resultHash), salt, JobState.DisputeRevealing);
    }

    /// @dev Opens the caller's commitment over `value` in `phase` (Revealing: originals, `value`
    /// is their sealed hash; DisputeRevealing: mediators, `value` is the plain result hash) and
    /// stores `sealedHash`, the value every tally compares.
    function _reveal(uint256 jobId, bytes32 value, bytes32 sealedHash, bytes32 salt, JobState phase) private {
        if (value == bytes32(0)) revert JobMarket__ZeroResultHash();
        Core memory c = _loadCore(jobId);
        if (c.state != phase) revert JobMarket__WrongState(jobId, c.state);
        Progress memory p = _loadProgress(jobId);
        if (block.timestamp > p.deadline) revert JobMarket__DeadlinePassed(jobId, p.deadline);
        bool mediation = phase == JobState.DisputeRevealing;
        uint256 idx = mediation ? _find(jobId, MEDIATOR_BASE, MEDIATOR_BASE + p.medCount) : _find(jobId, 0, c.n);
        mapping(uint256 => bytes32) storage commits = _commits[jobId];
        bytes32 committed = commits[idx];
        if (committed == bytes32(0)) revert JobMarket__NotCommitted(jobId, msg.sender);
        uint64 bit = uint64(1 << idx);
        if (p.revealed & bit != 0) revert JobMarket__AlreadyRevealed(jobId, msg.sender);
        bytes32 computed = keccak256(abi.encode(jobId, msg.sender, value, salt));
        if (computed != committed) revert JobMarket__CommitmentMismatch(jobId, msg.sender, committed, computed);
        // A mediator opening an original's revealed sealed hash copied it instead of running the
        // job: refused, so copies never vote (the copier ends slashed NoReveal).
        if (mediation && _matches(jobId, c.n, p.revealed, value) != 0) {
            revert JobMarket__CopiedResult(jobId, msg.sender);
        }
        commits[idx] = sealedHash;
        p.revealed |= bit;
        emit ResultRevealed(jobId, msg.sender, sealedHash);
        if (mediation) {
            if (++p.medReveals == p.medCommits) {
                _resolveDispute(jobId, c, p);
                return;
            }
        } else if (++p.revealCount == p.commitCount) {
            _endReveal(jobId, c, p);
            return;
        }
        _saveProgress(jobId, p);
    }

    // =====================================================================================
    // anyone
    // =====================================================================================

    function closeBidding(uint256 jobId) external {
        Core memory c = _loadCore(jobId);
        if (c.state > JobState.Drawing) revert JobMarket__WrongState(jobId, c.state);
        _closeBidding(jobId, c);
    }

    function finalize(uint256 jobId) external {
        Core memory c = _loadCore(jobId);
        JobState s = c.state;
        if (s <= JobState.Drawing) {
            _closeBidding(jobId, c);
            return;
        }
        if (s >= JobState.Verified) revert JobMarket__WrongState(jobId, s);
        Progress memory p = _loadProgress(jobId);
        if (s == JobState.DisputeDrawing) {
            _drawMediators(jobId, c, p);
            return;
        }
        if (block.timestamp <= p.deadline) revert JobMarket__DeadlineNotReached(jobId, p.deadline);
        if (s == JobState.Running) {
            if (p.commitCount < c.k) {
                _finish(jobId, c, p, Judge.None, bytes32(0), false);
                emit JobFailed(jobId, FailReason.TooFewCommits);
            } else {
                _startReveal(jobId, c, p);
            }
        } else if (s == JobState.Revealing) {
            _endReveal(jobId, c, p);
        } else if (s == JobState.Challengeable) {
            _finish(jobId, c, p, Judge.AllRevealed, bytes32(0), true);
        } else if (s == JobState.Disputed) {
            if (p.medCommits == 0) {
                _resolveDispute(jobId, c, p);
            } else {
                _startReveal(jobId, c, p);
            }
        } else {
            // DisputeRevealing
            _resolveDispute(jobId, c, p);
        }
    }

    function claim() external {
        uint256 amount = withdrawable[msg.sender];
        if (amount == 0) revert JobMarket__NothingToClaim(msg.sender);
        withdrawable[msg.sender] = 0;
        emit Claimed(msg.sender, amount);
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert JobMarket__TransferFailed(msg.sender, amount);
    }

    function publishResult(uint256 jobId, bytes32 resultHash) external {
        Core memory c = _loadCore(jobId);
        if (c.state != JobState.Verified) revert JobMarket__WrongState(jobId, c.state);
        bytes32 accepted = _commits[jobId][_progress[jobId].winner - 1];
        bytes32 computed = _sealed(jobId, resultHash);
        if (computed != accepted) revert JobMarket__NotTheResult(jobId, accepted, computed);
        emit ResultPublished(jobId, resultHash);
    }

    /// @dev Each call is a delegatecall into this contract: `msg.sender` stays the caller and
    /// `msg.value` is 0 (non-payable), so a batch can do nothing its calls could not do alone.
    function batch(bytes[] calldata calls) external {
        bytes32 failed = CallFailed.selector;
        for (uint256 i; i < calls.length; ++i) {
            bytes calldata call = calls[i];
            assembly ("memory-safe") {
                let p := mload(0x40)
                calldatacopy(p, call.offset, call.length)
                if iszero(delegatecall(gas(), address(), p, call.length, 0, 0)) {
                    // CallFailed(i, reason): ABI-encoded `bytes` (offset, length, padded data)
                    let n := returndatasize()
                    mstore(p, 0x20)
                    mstore(add(p, 0x20), n)
                    returndatacopy(add(p, 0x40), 0, n)
                    mstore(add(add(p, 0x40), n), 0)
                    log2(p, add(0x40, and(add(n, 31), not(31))), failed, i)
                }
            }
        }
    }

    // =====================================================================================
    // views
    // =====================================================================================

    function getJob(uint256 jobId) external view returns (Job memory job) {
        Core memory c = _core[jobId];
        Terms memory t = _loadTerms(jobId);
        Progress memory p = _loadProgress(jobId);
        job.creator = c.creator;
        job.state = c.state;
        job.verifier = p.verifier;
        job.escalate = p.escalate;
        job.concurrency = c.n;
        job.confidence = c.k;
        job.minBids = c.m;
        job.bidCount = p.bidCount;
        job.commitCount = p.commitCount;
        job.revealCount = p.revealCount;
        job.mediatorCount = p.medCount;
        job.maxPrice = t.maxPrice;
        job.collateral = t.collateral;
        job.execWindow = t.execWindow;
        job.revealWindow = t.revealWindow;
        job.challengeWindow = p.challengeWindow;
        job.bidDeadline = c.bidDeadline;
        job.phaseDeadline = p.deadline;
        job.specHash = _specHash[jobId];
        if (p.winner != 0) job.sealedResult = _commits[jobId][p.winner - 1];
        job.challenger = _challenger[jobId];
        job.escrow = _escrowOf(c, t, job.challenger);
    }

    function challengeBondOf(uint256 jobId) external view returns (uint256) {
        return _bondOf(_core[jobId], _terms[jobId]);
    }

    function getBids(uint256 jobId) external view returns (Bid[] memory bids) {
        uint256 count = _progress[jobId].bidCount;
        bids = new Bid[](count);
        for (uint256 i; i < count; ++i) {
            uint256 d = _deals[jobId][i];
            bids[i] = Bid(address(uint160(d)), uint96(d >> 160));
        }
    }

    function getDeals(uint256 jobId) external view returns (Deal[] memory) {
        JobState s = _core[jobId].state;
        if (s <= JobState.Drawing || s == JobState.Expired) return new Deal[](0);
        return _dealViews(jobId, 0, _core[jobId].n);
    }

    function getMediators(uint256 jobId) external view returns (Deal[] memory) {
        return _dealViews(jobId, MEDIATOR_BASE, _progress[jobId].medCount);
    }

    function commitmentOf(uint256 jobId, address operator, bytes32 value, bytes32 salt)
        external
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(jobId, operator, value, salt));
    }

    function sealedHashOf(uint256 jobId, bytes32 resultHash) external pure returns (bytes32) {
        return _sealed(jobId, resultHash);
    }

    // =====================================================================================
    // phases
    // =====================================================================================

    function _loadCore(uint256 jobId) private view returns (Core memory c) {
        c = _core[jobId];
        if (c.state == JobState.None) revert JobMarket__UnknownJob(jobId);
    }

    /// @dev Posted after the bid window: with at least `minBids` bids, arms the selection draw, or,
    /// with exactly `concurrency` bids (every bid wins, nothing to draw), selects them at once;
    /// else expires. Drawing: makes the draw (in a block after the draw block).
    function _closeBidding(uint256 jobId, Core memory c) private {
        Progress memory p = _loadProgress(jobId);
        if (c.state == JobState.Posted) {
            if (block.timestamp <= c.bidDeadline) revert JobMarket__DeadlineNotReached(jobId, c.bidDeadline);
            // `minBids` is a hard minimum: a job never runs on fewer bids than its creator asked for.
            if (p.bidCount > c.n && p.bidCount >= c.m) {
                _arm(jobId, c, p, JobState.Drawing);
                return;
            }
            if (p.bidCount >= c.m && _select(jobId, c, p, 0)) return;
        } else {
            uint256 seed = _seed(jobId, c, p, 1);
            if (seed == 0) return;
            if (_select(jobId, c, p, seed)) return;
        }
        // Never enough (lockable) bids: expire with a full refund.
        c.state = JobState.Expired;
        _saveCore(jobId, c);
        p.deadline = uint64(block.timestamp);
        _saveProgress(jobId, p);
        uint256 escrow = uint256(c.n) * _terms[jobId].maxPrice;
        _refund(jobId, c.creator, escrow);
        emit JobExpired(jobId, p.bidCount);
    }

    /// @dev Fixes the block whose hash will seed the draw (`drawBlock`, kept in `p.deadline`) and
    /// moves the job to `state` (Drawing or DisputeDrawing). The inputs of the draw are final from
    /// here on: no bid is accepted in Drawing, and a dispute's pool is snapshotted.
    function _arm(uint256 jobId, Core memory c, Progress memory p, JobState state) private {
        c.state = state;
        _saveCore(jobId, c);
        uint64 drawBlock = uint64(block.number) + drawDelay;
        p.deadline = drawBlock;
        _saveProgress(jobId, p);
        emit PhaseStarted(jobId, state, drawBlock);
    }

    /// @dev Picks `n` of all the bids uniformly at random (the helper's permutation, tried in order)
    /// and locks each winner's collateral; a winner whose stake can no longer be locked is dropped
    /// and the next bid tried. Winners end up in deal slots 0..n-1, the other bids after them.
    /// Returns false (nothing locked) when fewer than `n` bids could be locked. `seed` 0: exactly
    /// `n` bids, all winners, tried in bid order.
    function _select(uint256 jobId, Core memory c, Progress memory p, uint256 seed) private returns (bool) {
        Terms memory t = _loadTerms(jobId);
        uint256 n = c.n;
        uint256[] memory arr;
        if (seed == 0) {
            arr = new uint256[](n);
            for (uint256 i; i < n; ++i) {
                arr[i] = i;
            }
        } else {
            arr = JobDraw(draws).shuffle(seed, p.bidCount);
        }
        mapping(uint256 => uint256) storage deals = _deals[jobId];
        uint256 chosen;
        uint256 kept;
        for (uint256 i; i < arr.length; ++i) {
            uint256 d = deals[arr[i]];
            // arr[kept] (kept <= i) is no longer needed: it becomes the next kept bid
            if (chosen == n) {
                arr[kept++] = d; // a loser: kept, not locked
            } else if (registry.lock(address(uint160(d)), jobId, t.collateral)) {
                arr[kept++] = d;
                ++chosen;
            } else {
                emit BidDropped(jobId, address(uint160(d)));
            }
        }
        if (chosen < n) {
            for (uint256 i; i < chosen; ++i) {
                registry.unlock(address(uint160(arr[i])), jobId, t.collateral);
            }
            return false;
        }
        for (uint256 i; i < kept; ++i) {
            if (deals[i] != arr[i]) deals[i] = arr[i];
            if (i < n) emit DealAccepted(jobId, address(uint160(arr[i])), uint96(arr[i] >> 160), t.collateral);
        }
        p.bidCount = uint8(kept);
        c.state = JobState.Running;
        _saveCore(jobId, c);
        uint64 deadline = uint64(block.timestamp) + t.execWindow;
        p.deadline = deadline;
        _saveProgress(jobId, p);
        emit PhaseStarted(jobId, JobState.Running, deadline);
        return true;
    }

    /// @dev Closes a commit phase (original or mediation) and opens its reveal phase.
    function _startReveal(uint256 jobId, Core memory c, Progress memory p) private {
        c.state = c.state == JobState.Disputed ? JobState.DisputeRevealing : JobState.Revealing;
        _saveCore(jobId, c);
        uint64 deadline = uint64(block.timestamp) + _terms[jobId].revealWindow;
        p.deadline = deadline;
        _saveProgress(jobId, p);
        emit PhaseStarted(jobId, c.state, deadline);
    }

    /// @dev Ends the original reveal phase: tally (deterministic) or challenge window (optimistic).
    function _endReveal(uint256 jobId, Core memory c, Progress memory p) private {
        if (p.verifier == Verifier.Optimistic) {
            if (p.revealCount < c.k) {
                _finish(jobId, c, p, Judge.None, bytes32(0), true);
                emit JobFailed(jobId, FailReason.TooFewReveals);
                return;
            }
            c.state = JobState.Challengeable;
            _saveCore(jobId, c);
            uint64 deadline = uint64(block.timestamp) + p.challengeWindow;
            p.deadline = deadline;
            _saveProgress(jobId, p);
            emit PhaseStarted(jobId, JobState.Challengeable, deadline);
            return;
        }
        (bytes32 best, uint256 bestCount, bool tie, bool disagree) = _tally(jobId, 0, c.n, p.revealed);
        if (disagree && p.escalate) {
            _armDispute(jobId, c, p, address(0), 0);
            return;
        }
        if (bestCount >= c.k && !tie) {
            _finish(jobId, c, p, Judge.Truth, best, true);
        } else if (c.k == c.n && p.revealCount == c.n && bestCount * 2 > c.n) {
            // Unanimity was required and everyone revealed, but a strict majority agrees: the job
            // fails, the dissenters are slashed (WrongResult), the majority is unlocked unpaid.
            _finish(jobId, c, p, Judge.Dissent, best, true);
            emit JobFailed(jobId, FailReason.NoQuorum);
        } else {
            _finish(jobId, c, p, Judge.None, bytes32(0), true);
            emit JobFailed(jobId, p.revealCount < c.k ? FailReason.TooFewReveals : FailReason.NoQuorum);
        }
    }

    /// @dev Opens a dispute: snapshots the mediator pool (its size and this block) and arms the
    /// mediator draw (DisputeDrawing). `bond`: the challenge bond (0 for an escalation).
    function _armDispute(uint256 jobId, Core memory c, Progress memory p, address challenger, uint256 bond) private {
        _pools[jobId] = block.number | registry.eligibleCount() << 64;
        emit DisputeOpened(jobId, challenger, uint96(bond));
        _arm(jobId, c, p, JobState.DisputeDrawing);
    }

    /// @dev DisputeDrawing, in a block after the draw block: draws the job's `mediators` fresh
    /// operators (not on the job, not the creator or the challenger) from the pool snapshotted when
    /// the dispute was opened and locks their collateral. When not enough can be found, an
    /// escalated job fails safe (NoMediators: the plain tally never decides a disagreement that
    /// asked for mediation) and a challenged result stands with the bond returned.
    function _drawMediators(uint256 jobId, Core memory c, Progress memory p) private {
        uint256 seed = _seed(jobId, c, p, 2);
        if (seed == 0) return;
        Terms memory t = _loadTerms(jobId);
        address challenger = _challenger[jobId];
        uint256 n = c.n;
        uint256 pool = _pools[jobId];
        JobDraw.MediatorDraw memory d;
        d.seed = seed;
        d.pool = pool >> 64;
        d.armBlock = uint64(pool);
        d.need = p.mediators == 0 ? mediatorCount : p.mediators;
        d.collateral = t.collateral;
        d.exclude = new address[](n + 2);
        mapping(uint256 => uint256) storage deals = _deals[jobId];
        for (uint256 i; i < n; ++i) {
            d.exclude[i] = address(uint160(deals[i]));
        }
        (d.exclude[n], d.exclude[n + 1]) = (c.creator, challenger);
        (address[] memory picked, uint256 found) = JobDraw(draws).drawMediators(d);
        if (found < d.need) {
            if (challenger == address(0)) {
                _finish(jobId, c, p, Judge.None, bytes32(0), true);
                emit JobFailed(jobId, FailReason.NoMediators);
            } else {
                _credit(jobId, challenger, _bondOf(c, t), PaymentKind.BondReturned);
                _finish(jobId, c, p, Judge.AllRevealed, bytes32(0), true);
                emit DisputeResolved(jobId, bytes32(0), false);
            }
            return;
        }
        for (uint256 i; i < found; ++i) {
            // Cannot fail: the draw checked exactly the conditions `lock` checks, nothing changed
            // since, and the picks are distinct.
            registry.lock(picked[i], jobId, t.collateral);
            deals[MEDIATOR_BASE + i] = uint160(picked[i]);
            emit MediatorSelected(jobId, picked[i], t.collateral);
        }
        c.state = JobState.Disputed;
        _saveCore(jobId, c);
        uint64 deadline = uint64(block.timestamp) + t.execWindow;
        p.deadline = deadline;
        p.medCount = uint8(found);
        _saveProgress(jobId, p);
        emit PhaseStarted(jobId, JobState.Disputed, deadline);
    }

    /// @dev Ends mediation. The mediators' strict majority (of those drawn) is the truth; the job
    /// is Verified only when some original revealed it and the originals and mediators that
    /// revealed it are at least `confidence`. Below confidence it fails safe (NoQuorum: refund,
    /// the truth's revealers unlocked unpaid, no mediator fee, only results differing from the
    /// mediators' majority slashed). Without a mediator majority a challenged (optimistic) result
    /// stands, as if unchallenged, and the bond is lost; an escalated job fails.
    function _resolveDispute(uint256 jobId, Core memory c, Progress memory p) private {
        (bytes32 best, uint256 bestCount,,) = _tally(jobId, MEDIATOR_BASE, p.medCount, p.revealed >> MEDIATOR_BASE);
        if (bestCount * 2 > p.medCount) {
            uint256 agree = _matches(jobId, c.n, p.revealed, best);
            if (agree == 0 || agree + bestCount >= c.k) {
                // verified, or failed when no original revealed the truth (NoCorrectResult)
                _finish(jobId, c, p, Judge.Truth, best, true);
            } else {
                _finish(jobId, c, p, Judge.Dissent, best, true);
                emit JobFailed(jobId, FailReason.NoQuorum);
            }
        } else if (p.verifier == Verifier.Optimistic) {
            _finish(jobId, c, p, Judge.AllRevealed, bytes32(0), true);
            emit DisputeResolved(jobId, bytes32(0), false);
        } else {
            _finish(jobId, c, p, Judge.None, bytes32(0), true);
            emit DisputeResolved(jobId, bytes32(0), false);
            emit JobFailed(jobId, FailReason.NoMediatorMajority);
        }
    }

    // =====================================================================================
    // settlement
    // =====================================================================================

    /// @dev Settles a job: pays, unlocks and slashes the deals (and mediators, after a
    /// dispute), returns or keeps the challenge bond, pays mediators from the slashed pot, and
    /// refunds the rest of the escrow and the pot to the creator. Emits JobVerified when at least
    /// one original result was judged correct; otherwise the caller emits why the job failed.
    /// `revealPhase`: whether a reveal phase took place (committed but unrevealed results are
    /// slashed only then).
    function _finish(uint256 jobId, Core memory c, Progress memory p, Judge judge, bytes32 truth, bool revealPhase)
        private
    {
        Terms memory t = _loadTerms(jobId);
        Tab memory tab;
        tab.jobId = jobId;
        tab.collateral = t.collateral;
        tab.escrowLeft = uint256(c.n) * t.maxPrice;
        tab.revealed = p.revealed;
        tab.judge = judge;
        tab.truth = truth;
        tab.revealPhase = revealPhase;
        bool disputed = p.medCount != 0;
        for (uint256 i; i < c.n; ++i) {
            _settleOne(tab, i, true);
        }
        if (disputed) {
            tab.revealPhase = true;
            for (uint256 i = MEDIATOR_BASE; i < MEDIATOR_BASE + p.medCount; ++i) {
                _settleOne(tab, i, false);
            }
        }
        bool upheld;
        if (disputed && truth != bytes32(0)) {
            // A challenge is upheld when some revealed original result was not the mediators' truth.
            upheld = _matches(jobId, c.n, p.revealed, truth) < p.revealCount;
            emit DisputeResolved(jobId, truth, upheld);
        }
        address challenger = disputed ? _challenger[jobId] : address(0);
        if (challenger != address(0)) {
            // A challenge that is not upheld (including no mediator majority) loses its bond.
            uint256 bond = _bondOf(c, t);
            if (upheld) {
                _credit(jobId, challenger, bond, PaymentKind.BondReturned);
                tab.reward = bond;
            } else {
                tab.pot += bond;
            }
        }
        // The pot (slashed stake, a lost bond) pays the correct mediators' fees first, then an
        // upheld challenger up to its bond; the rest goes to the operators whose result was accepted
        // (the ones a lost challenge wrongly accused), never to the creator as such; what has no
        // honest recipient is burned.
        if (tab.correctMediators != 0) {
            _share(tab, tab.correctMediators, MEDIATOR_BASE, t.maxPrice, PaymentKind.Mediation);
        }
        if (tab.reward != 0 && tab.pot != 0) {
            if (tab.reward > tab.pot) tab.reward = tab.pot;
            tab.pot -= tab.reward;
            _credit(jobId, challenger, tab.reward, PaymentKind.ChallengeReward);
        }
        if (tab.pot != 0 && tab.correct != 0) {
            _share(tab, tab.correctOriginals, 0, type(uint256).max, PaymentKind.Compensation);
        }

        bool verified = tab.correct != 0;
        c.state = verified ? JobState.Verified : JobState.Failed;
        _saveCore(jobId, c);
        p.deadline = uint64(block.timestamp);
        if (verified) p.winner = tab.firstCorrect;
        _saveProgress(jobId, p);

        if (tab.escrowLeft != 0) _refund(jobId, c.creator, tab.escrowLeft);
        if (tab.pot != 0) {
            withdrawable[address(0)] += tab.pot;
            emit Burned(jobId, tab.pot);
        }
        if (verified) {
            emit JobVerified(jobId, _commits[jobId][tab.firstCorrect - 1], tab.correct);
        } else if (judge == Judge.Truth) {
            emit JobFailed(jobId, FailReason.NoCorrectResult);
        }
    }

    /// @dev Settles deal slot `i`: a correct result is paid (original) or marked for a mediation
    /// fee (mediator) and unlocked; the others are unlocked or slashed.
    function _settleOne(Tab memory tab, uint256 i, bool original) private {
        uint256 d = _deals[tab.jobId][i];
        address op = address(uint160(d));
        bytes32 h = _commits[tab.jobId][i];
        if (tab.revealed & uint64(1 << i) != 0) {
            if (tab.judge == Judge.AllRevealed || (tab.judge == Judge.Truth && h == tab.truth)) {
                registry.unlock(op, tab.jobId, tab.collateral);
                if (original) {
                    uint96 price = uint96(d >> 160);
                    tab.escrowLeft -= price;
                    ++tab.correct;
                    tab.correctOriginals |= uint64(1 << i);
                    if (tab.firstCorrect == 0) tab.firstCorrect = uint8(i + 1);
                    _credit(tab.jobId, op, price, PaymentKind.Execution);
                } else {
                    tab.correctMediators |= uint64(1 << (i - MEDIATOR_BASE));
                }
            } else if (tab.judge == Judge.None || (tab.judge == Judge.Dissent && h == tab.truth)) {
                registry.unlock(op, tab.jobId, tab.collateral);
            } else {
                _slash(tab, op, SlashReason.WrongResult);
            }
        } else if (h != bytes32(0)) {
            if (tab.revealPhase) _slash(tab, op, SlashReason.NoReveal);
            else registry.unlock(op, tab.jobId, tab.collateral);
        } else {
            _slash(tab, op, SlashReason.NoCommit);
        }
    }

    /// @dev Shares the pot equally, at most `cap` each, among deal slots `base + i` for each bit
    /// i of `set` (correct mediators: fee up to maxPrice; correct originals: the rest).
    function _share(Tab memory tab, uint64 set, uint256 base, uint256 cap, PaymentKind kind) private {
        uint256 count;
        for (uint64 s = set; s != 0; s &= s - 1) {
            ++count;
        }
        uint256 share = tab.pot / count;
        if (share > cap) share = cap;
        if (share == 0) return;
        mapping(uint256 => uint256) storage deals = _deals[tab.jobId];
        for (uint256 i; set != 0; ++i) {
            if (set & uint64(1 << i) != 0) {
                set &= ~uint64(1 << i);
                _credit(tab.jobId, address(uint160(deals[base + i])), share, kind);
                tab.pot -= share;
            }
        }
    }

    function _slash(Tab memory tab, address op, SlashReason reason) private {
        if (tab.collateral != 0) {
            registry.slash(op, tab.jobId, tab.collateral);
            tab.pot += tab.collateral;
        }
        emit Slashed(tab.jobId, op, tab.collateral, reason);
    }

    function _credit(uint256 jobId, address to, uint256 amount, PaymentKind kind) private {
        withdrawable[to] += amount;
        emit Paid(jobId, to, amount, kind);
    }

    function _refund(uint256 jobId, address creator, uint256 amount) private {
        withdrawable[creator] += amount;
        emit Refunded(jobId, creator, amount);
    }

    // =====================================================================================
    // helpers
    // =====================================================================================

    /// @dev The only source of randomness: `keccak256(blockhash(drawBlock), jobId, purpose)`
    /// (purpose 1 = selection, 2 = mediators), usable only in a block after `drawBlock` (=
    /// `p.deadline` in Drawing and DisputeDrawing), which was fixed when the draw's inputs became
    /// final. When that hash is no longer available (more than 256 blocks later) the draw is
    /// re-armed from this block and 0 returned (the caller stops); there is no fallback source.
    function _seed(uint256 jobId, Core memory c, Progress memory p, uint256 purpose) private returns (uint256) {
        uint64 drawBlock = p.deadline;
        if (block.number <= drawBlock) revert JobMarket__DrawNotReady(jobId, drawBlock);
        bytes32 h = blockhash(drawBlock);
        if (h == bytes32(0)) {
            _arm(jobId, c, p, c.state);
            emit DrawRearmed(jobId, drawBlock, p.deadline);
            return 0;
        }
        return uint256(keccak256(abi.encode(h, jobId, purpose)));
    }

    /// @dev Deal slot of the caller within [from, to); reverts when the caller holds none.
    function _find(uint256 jobId, uint256 from, uint256 to) private view returns (uint256) {
        mapping(uint256 => uint256) storage deals = _deals[jobId];
        for (uint256 i = from; i < to; ++i) {
            if (address(uint160(deals[i])) == msg.sender) return i;
        }
        revert JobMarket__NotOnJob(jobId, msg.sender);
    }

    function _isDeal(uint256 jobId, uint256 n, address op) private view returns (bool) {
        mapping(uint256 => uint256) storage deals = _deals[jobId];
        for (uint256 i; i < n; ++i) {
            if (address(uint160(deals[i])) == op) return true;
        }
        return false;
    }

    /// @dev Largest group of equal revealed hashes in slots [from, from + count).
    function _tally(uint256 jobId, uint256 from, uint256 count, uint64 revealedBits)
        private
        view
        returns (bytes32 best, uint256 bestCount, bool tie, bool disagree)
    {
        mapping(uint256 => bytes32) storage commits = _commits[jobId];
        bytes32[] memory hashes = new bytes32[](count);
        uint256 r;
        for (uint256 i; i < count; ++i) {
            if (revealedBits & uint64(1 << i) != 0) hashes[r++] = commits[from + i];
        }
        for (uint256 i; i < r; ++i) {
            uint256 same;
            for (uint256 j; j < r; ++j) {
                if (hashes[j] == hashes[i]) ++same;
            }
            if (same < r) disagree = true;
            if (same > bestCount) {
                (best, bestCount, tie) = (hashes[i], same, false);
            } else if (same == bestCount && hashes[i] != best) {
                tie = true;
            }
        }
    }

    /// @dev Number of revealed original results equal to `truth`.
    function _matches(uint256 jobId, uint256 n, uint64 revealedBits, bytes32 truth)
        private
        view
        returns (uint256 count)
    {
        mapping(uint256 => bytes32) storage commits = _commits[jobId];
        for (uint256 i; i < n; ++i) {
            if (revealedBits & uint64(1 << i) != 0 && commits[i] == truth) ++count;
        }
    }

    /// @dev The bond `challenge` requires: max(challengeBond, escrow x challengeBondPercent / 100).
    function _bondOf(Core memory c, Terms memory t) private view returns (uint256 bond) {
        bond = uint256(c.n) * t.maxPrice * challengeBondPercent / 100;
        if (bond < challengeBond) bond = challengeBond;
    }

    function _escrowOf(Core memory c, Terms memory t, address challenger) private view returns (uint256) {
        JobState s = c.state;
        if (s == JobState.None || s == JobState.Verified || s == JobState.Failed || s == JobState.Expired) return 0;
        return uint256(c.n) * t.maxPrice + (challenger == address(0) ? 0 : _bondOf(c, t));
    }

    function _dealViews(uint256 jobId, uint256 from, uint256 count) private view returns (Deal[] memory out) {
        out = new Deal[](count);
        uint64 revealedBits = _progress[jobId].revealed;
        for (uint256 i; i < count; ++i) {
            uint256 d = _deals[jobId][from + i];
            bytes32 h = _commits[jobId][from + i];
            bool rev = revealedBits & uint64(1 << (from + i)) != 0;
            out[i] = Deal({
                operator: address(uint160(d)),
                price: uint96(d >> 160),
                committed: h != bytes32(0),
                revealed: rev,
                commitment: rev ? bytes32(0) : h,
                sealedResult: rev ? h : bytes32(0)
            });
        }
    }

    function _saveCore(uint256 jobId, Core memory c) private {
        _core[jobId] = c;
    }

    function _saveProgress(uint256 jobId, Progress memory p) private {
        _progress[jobId] = p;
    }

    function _loadProgress(uint256 jobId) private view returns (Progress memory) {
        return _progress[jobId];
    }

    function _loadTerms(uint256 jobId) private view returns (Terms memory) {
        return _terms[jobId];
    }

    /// @dev The sealed form of a result hash: what originals reveal and every tally compares.
    function _sealed(uint256 jobId, bytes32 resultHash) private pure returns (bytes32) {
        return keccak256(abi.encode(jobId, resultHash));
    }

    function _pack(address op, uint96 price) private pure returns (uint256) {
        return uint256(uint160(op)) | (uint256(price) << 160);
    }
}
